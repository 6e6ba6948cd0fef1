"""The vision stage: a photo becomes a :class:`protocol.messages.Classification`.

Backends, all implementing :class:`server.contracts.VisionStage`:

* :class:`server.vision.embedded.EmbeddedClassifier`: EfficientNet-Lite0 (ImageNet) features
  and logits under onnxruntime, a head trained on real photos of 16 kinds (TrashNet and
  more_photos; foil and plastic film from photos labelled one by one), ImageNet evidence for
  what the head was not taught, and doubt (look-alikes, unfamiliar photos). Runs on a CPU in
  milliseconds, needs no key and no network.
* :class:`server.vision.openai_backend.OpenAIVisionClassifier`: an OpenAI-compatible vision
  model, falling back to the embedded classifier on any failure.
* :class:`server.vision.cache.CachedVision`: answers a photo the same user sent before (the
  same bytes) without asking the backend it wraps.
"""
