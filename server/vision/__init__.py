"""The vision stage: a photo becomes a :class:`protocol.messages.Classification`.

Backends, all implementing :class:`server.contracts.VisionStage`:

* :class:`server.vision.embedded.EmbeddedClassifier`: EfficientNet-Lite0 (ImageNet) features
  and logits under onnxruntime, a head trained on TrashNet photos, and a mapping of the ImageNet
  classes that TrashNet lacks. Runs on a CPU in milliseconds, needs no key and no network.
* :class:`server.vision.openai_backend.OpenAIVisionClassifier`: an OpenAI-compatible vision
  model, falling back to the embedded classifier on any failure.
* :class:`server.vision.cache.CachedVision`: answers a photo the same user sent before (the
  same bytes) without asking the backend it wraps.
"""
