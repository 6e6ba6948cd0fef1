// Waste Coach reference client: plain JavaScript, no build step, no dependencies.
// It speaks only the documented protocol (docs/protocol.md): a guest token (section 2), one
// WebSocket session with resume (7), uploads (10), scans (5), chat (12) and live camera mode (15).
'use strict';

// ---------------------------------------------------------------- UI strings (ko first, en)
const STRINGS = {
  ko: {
    title: '분리배출 코치', language: '언어', connecting: '연결 중…', connected: '연결됨',
    reconnecting: '연결이 끊겼어요. 다시 연결하는 중…', liveTitle: '카메라로 보여 주기',
    steady: '인식 진행', liveStart: '라이브 시작', liveStop: '멈추기',
    liveReady: '물건 하나를 화면 가운데에 들고 있어 주세요.', liveOff: '라이브를 멈췄어요.',
    liveIdle: '한동안 화면이 오지 않아 라이브를 멈췄어요.', noCamera: '카메라를 열 수 없어요: ',
    uploadTitle: '사진 올리기', uploadLabel: '사진을 찍거나 고르세요', uploading: '사진을 올리는 중…',
    badType: 'JPEG, PNG, WebP 사진만 올릴 수 있어요.', resultTitle: '결과', howTo: '버리는 방법',
    places: '가까운 수거 장소', confidence: '확신도', chatTitle: '더 물어보기', chatLabel: '질문',
    send: '보내기', you: '나', coach: '코치', chatFailed: '답을 만들지 못했어요. 다시 물어봐 주세요.',
    scanFailed: '분석하지 못했어요: ', interrupted: '연결이 끊겨 결과를 받지 못했어요. 다시 시도해 주세요.',
    error: '오류: ', directions: '길찾기', away: '',
  },
  en: {
    title: 'Waste Coach', language: 'Language', connecting: 'Connecting…', connected: 'Connected',
    reconnecting: 'Connection lost. Reconnecting…', liveTitle: 'Show it to the camera',
    steady: 'Recognition progress', liveStart: 'Start live', liveStop: 'Stop',
    liveReady: 'Hold one item in the middle of the picture.', liveOff: 'Live mode stopped.',
    liveIdle: 'Live mode stopped: no camera frames for a while.', noCamera: 'Cannot open the camera: ',
    uploadTitle: 'Upload a photo', uploadLabel: 'Take or choose a photo', uploading: 'Uploading the photo…',
    badType: 'Only JPEG, PNG and WebP photos can be uploaded.', resultTitle: 'Result',
    howTo: 'How to dispose of it', places: 'Collection points nearby', confidence: 'confidence',
    chatTitle: 'Ask a question', chatLabel: 'Question', send: 'Send', you: 'You', coach: 'Coach',
    chatFailed: 'No answer could be made. Please ask again.', scanFailed: 'The scan failed: ',
    interrupted: 'The connection dropped before the result came. Please try again.',
    error: 'Error: ', directions: 'Directions', away: 'away',
  },
};

// ---------------------------------------------------------------- state
const $ = (id) => document.getElementById(id);
const store = window.localStorage;
const state = {
  lang: store.getItem('wc.lang') || (navigator.language.startsWith('ko') ? 'ko' : 'en'),
  ws: null, ready: false, backoff: 0.5, pingTimer: 0,
  session: JSON.parse(store.getItem('wc.session') || 'null'), // {session_id, epoch, last_seq}
  location: null,                 // {lat, lon, accuracy_m} once the person allowed it
  scan: null,                     // the scan shown: {rid, scanId, deltas: []}
  chats: new Map(),               // chat request id -> {deltas: [], el}
  live: null,                     // {rid, timer, number, busy}
};
// Request ids must be new in the session, also across reloads that resume it: a random prefix.
const idPrefix = Math.random().toString(36).slice(2, 8);
let idCounter = 0;
const newId = (kind) => `${kind}-${idPrefix}-${++idCounter}`;
const t = (key) => STRINGS[state.lang][key];
// A new element with properties and children (text is always set as text, never as HTML).
function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// ---------------------------------------------------------------- language
function applyLanguage() {
  document.documentElement.lang = state.lang;
  $('lang').value = state.lang;
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  document.title = t('title');
}
$('lang').addEventListener('change', (e) => {
  state.lang = e.target.value;
  store.setItem('wc.lang', state.lang);
  applyLanguage();
});

// The status line keeps its key, so that a language switch re-labels it too.
function setStatus(key) {
  $('status').dataset.i18n = key;
  $('status').textContent = t(key);
}
function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

// ---------------------------------------------------------------- auth (section 2)
// A guest token cannot be renewed; when it has expired we become a new guest, which cannot
// resume the old user's session, so the stored session goes too.
async function token() {
  const saved = JSON.parse(store.getItem('wc.auth') || 'null');
  if (saved && saved.expires_at - Date.now() > 30000) return saved.access_token;
  const res = await fetch('/api/v1/auth/guest', { method: 'POST' });
  if (!res.ok) throw new Error(`guest sign-in: HTTP ${res.status}`);
  const body = await res.json();
  const auth = { ...body, expires_at: Date.now() + body.expires_in * 1000 };
  store.setItem('wc.auth', JSON.stringify(auth));
  forgetSession();
  return auth.access_token;
}
function forgetSession() { state.session = null; store.removeItem('wc.session'); }
function saveSession() { store.setItem('wc.session', JSON.stringify(state.session)); }

// ---------------------------------------------------------------- the WebSocket (sections 3, 7, 9)
async function connect() {
  let access;
  try { access = await token(); } catch (err) { return retryLater(String(err)); }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/api/v1/coach/ws`);
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  ws.onopen = () => {
    const start = { type: 'session.start', v: 1, token: access, locale: state.lang };
    if (state.session) start.resume = state.session;
    ws.send(JSON.stringify(start));
  };
  ws.onmessage = (msg) => receive(JSON.parse(msg.data));
  ws.onclose = (e) => closed(e.code);
}

function send(message) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN || !state.ready) return false;
  state.ws.send(JSON.stringify(message));
  return true;
}

// Section 7.5: what to do after each close code.
function closed(code) {
  state.ready = false;
  state.ws = null;
  clearInterval(state.pingTimer);
  stopFrames();
  if (code === 1008) return showError(`${t('error')}1008`); // our own bug: do not loop
  if (code === 4001) store.removeItem('wc.auth');              // token expired: new guest
  if (code === 4003) forgetSession();                          // resume_forbidden
  retryLater();
}

function retryLater(why) {
  if (why) showError(why);
  setStatus('reconnecting');
  const wait = state.backoff * (0.5 + Math.random());           // exponential, with jitter
  state.backoff = Math.min(state.backoff * 2, 30);
  setTimeout(connect, wait * 1000);
}

// Every server event comes here. Logged events (seq > 0) are checked for gaps (section 7.4).
function receive(event) {
  if (event.seq > 0) {
    const last = state.session ? state.session.last_seq : 0;
    if (event.seq <= last) return;                              // a duplicate
    if (event.seq > last + 1) { state.ws.close(1000); return; } // a gap: resume fills it
    handle(event);
    state.session.last_seq = event.seq;
    saveSession();
  } else {
    handle(event);
  }
}

function handle(e) {
  switch (e.type) {
    case 'session.ready': return ready(e);
    case 'error': return onError(e);
    case 'live.started': return liveStarted(e);
    case 'live.hint': return liveHint(e);
    case 'live.scan': return newResult(e.scan_request_id);
    case 'live.stopped': return liveStopped(e);
    case 'scan.accepted': if (isShown(e)) state.scan.scanId = e.scan_id; return;
    case 'scan.classified': return isShown(e) && classified(e.classification);
    case 'scan.clarify': return isShown(e) && clarify(e);
    case 'coaching.delta': return isShown(e) && coachingDelta(e);
    case 'coaching.done': if (isShown(e)) $('coaching').textContent = e.text; return;
    case 'bins.suggested': return isShown(e) && places(e);
    case 'scan.done': return isShown(e) && scanDone(e);
    case 'chat.delta': return chatDelta(e);
    case 'chat.done': return chatDone(e);
    default: return; // pong, rate_limits.updated, live.dropped and types yet unknown
  }
}

function ready(e) {
  const resumed = e.resumed && state.session && state.session.session_id === e.session_id;
  if (!resumed) {
    // A new session (7.3): whatever was in flight is lost.
    if (state.scan && !state.scan.done) $('coaching').textContent = t('interrupted');
    for (const chat of state.chats.values()) chat.el.textContent = t('chatFailed');
    state.chats.clear();
    state.session = { session_id: e.session_id, epoch: e.epoch, last_seq: 0 };
    saveSession();
  }
  state.ready = true;
  state.backoff = 0.5;
  showError('');
  setStatus('connected');
  // Section 9: the server drops connections that send nothing for 90 s.
  state.pingTimer = setInterval(() => send({ type: 'ping' }), e.heartbeat_interval_s * 1000);
  // Live mode belongs to the connection: start it again after a reconnect (15.1).
  if (state.live) startLive();
}

// An error answers one message of ours (its request_id), or the connection (request_id null).
function onError(e) {
  if (e.code === 'auth_expired' || e.code === 'auth_invalid') store.removeItem('wc.auth');
  if (state.live && e.request_id === state.live.rid) stopLive(false);
  if (isShown(e) && !state.scan.scanId) {                       // the scan never started
    $('coaching').textContent = '';
    $('result').dataset.state = 'failed';
  }
  if (state.chats.has(e.request_id)) {
    state.chats.get(e.request_id).el.textContent = t('chatFailed');
    state.chats.delete(e.request_id);
  }
  showError(`${t('error')}${e.code}: ${e.message}`);
}

// ---------------------------------------------------------------- one scan's result (section 5)
const isShown = (e) => state.scan !== null && e.request_id === state.scan.rid;

function newResult(rid) {
  state.scan = { rid, scanId: null, deltas: [], done: false };
  $('result').hidden = false;
  $('result').dataset.state = 'scanning'; // then completed, cancelled or failed (scan.done)
  for (const id of ['class-name', 'class-conf', 'coaching', 'places']) $(id).textContent = '';
  $('bins-note').hidden = true;
  $('clarify').hidden = true;
}

function classified(c) {
  $('clarify').hidden = true;
  $('class-name').textContent = state.lang === 'ko' ? c.name_ko : c.name_en;
  $('class-conf').textContent = `(${t('confidence')} ${Math.round(c.confidence * 100)}%)`;
}

// The server is unsure: offer its choices (5.1). Without an answer it goes on by itself.
function clarify(e) {
  $('clarify-q').textContent = e.question;
  const box = $('clarify-choices');
  box.textContent = '';
  for (const choice of e.choices) {
    const answer = { type: 'scan.clarify.answer', request_id: state.scan.rid, choice: choice.label };
    box.append(el('button', { type: 'button', className: 'secondary', textContent: choice.text,
      onclick: () => send(answer) }));
  }
  $('clarify').hidden = false;
}

// Deltas may only be appended in index order; keep them by index and show the joined text.
function coachingDelta(e) {
  state.scan.deltas[e.index] = e.text;
  $('coaching').textContent = state.scan.deltas.join('');
}

function places(e) {
  const list = $('places');
  list.textContent = '';
  $('bins-note').textContent = e.note || '';
  $('bins-note').hidden = !e.note;
  for (const p of e.places) {
    const d = p.distance_m;
    const far = d >= 1000 ? `${(d / 1000).toFixed(1)} km` : `${Math.round(d)} m`;
    const links = el('span', { className: 'links' });
    for (const [app, href] of Object.entries(p.links)) {  // kakao, naver, google: walking routes
      const a = el('a', { href, target: '_blank', rel: 'noopener noreferrer',
        textContent: app[0].toUpperCase() + app.slice(1) });
      a.setAttribute('aria-label', `${t('directions')}: ${p.name} (${app})`);
      links.append(a);
    }
    const where = ` · ${far} ${t('away')}${p.address ? ' · ' + p.address : ''}`;
    list.append(el('li', {}, el('strong', { textContent: p.name }), where, links));
  }
}

function scanDone(e) {
  state.scan.done = true;
  $('result').dataset.state = e.status;
  if (e.status === 'failed') {
    $('coaching').textContent = t('scanFailed') + (e.error ? e.error.code : '');
  }
}

// The position, if the person allows it, lets bins.suggested list nearby places. It is asked
// for when a scan is about to start (not on load), and waited for at most 3 s.
function locate() {
  if (state.location || !navigator.geolocation) return Promise.resolve();
  return new Promise((done) => {
    setTimeout(done, 3000);
    navigator.geolocation.getCurrentPosition((p) => {
      state.location = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy };
      done();
    }, done, { timeout: 3000, maximumAge: 600000 });
  });
}

// ---------------------------------------------------------------- live camera mode (section 15)
async function startLive() {
  const video = $('video');
  if (!video.srcObject) {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: 'environment' }, width: { ideal: 640 } }, audio: false,
      });
      await video.play();
      $('camera').hidden = false;
    } catch (err) {
      return showError(t('noCamera') + err.message);
    }
  }
  await locate();
  // A new id every time: its scans are <id>:1, <id>:2 … and ids are never reused (15.1).
  state.live = { rid: newId('live'), timer: 0, number: 0, busy: false };
  const message = { type: 'live.start', request_id: state.live.rid, locale: state.lang };
  if (state.location) message.location = state.location;
  if (send(message)) {
    $('live-start').disabled = true;
    $('live-stop').disabled = false;
  }
}

function liveStarted(e) {
  if (!state.live || e.request_id !== state.live.rid) return;
  $('hint').textContent = t('liveReady');
  // Four frames a second is plenty (15.2), and never more than the server takes.
  const every = Math.max(250, 1000 / e.max_fps);
  state.live.maxBytes = e.max_frame_bytes;
  state.live.timer = setInterval(sendFrame, every);
}

// One camera frame: the video drawn on a canvas (640 px wide at most), JPEG at quality 0.7,
// behind the binary header of section 15.2. A frame is skipped while the previous one is
// still being encoded, or while the socket has not sent the previous ones yet.
function sendFrame() {
  const live = state.live;
  const video = $('video');
  if (!live || live.busy || !state.ready || video.readyState < 2) return;
  if (state.ws.bufferedAmount > 65536) return;   // the network is behind: do not pile up frames
  const canvas = $('canvas');
  const scale = Math.min(1, 640 / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
  live.busy = true;
  canvas.toBlob(async (blob) => {
    try {
      if (!blob || blob.size > live.maxBytes) return;
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      if (state.live !== live || !state.ready) return;
      state.ws.send(cameraFrame(live.rid, ++live.number, jpeg));
    } finally {
      live.busy = false;
    }
  }, 'image/jpeg', 0.7);
}

function cameraFrame(requestId, number, jpegBytes) {
  const id = new TextEncoder().encode(requestId);
  const out = new Uint8Array(14 + id.length + jpegBytes.length);
  const view = new DataView(out.buffer);
  out[0] = 1; out[1] = id.length; out.set(id, 2);
  view.setUint32(2 + id.length, number);
  view.setBigUint64(6 + id.length, BigInt(Date.now()));
  out.set(jpegBytes, 14 + id.length);
  return out;
}

function liveHint(e) {
  if (!state.live || e.request_id !== state.live.rid) return;
  // Only a changed line is written: screen readers announce every write of a live region.
  if ($('hint').textContent !== e.text) $('hint').textContent = e.text;
  $('steady').value = e.steady;
}

function liveStopped(e) {
  if (state.live && e.request_id === state.live.rid) {
    stopLive(false);
    $('hint').textContent = t(e.reason === 'idle' ? 'liveIdle' : 'liveOff');
  }
}

function stopFrames() {
  if (state.live) clearInterval(state.live.timer);
}

// Stop sending frames (and tell the server, when it is the person's choice); a scan that
// live mode started still runs to its scan.done.
function stopLive(tellServer) {
  if (!state.live) return;
  stopFrames();
  if (tellServer) send({ type: 'live.stop', request_id: state.live.rid });
  state.live = null;
  const video = $('video');
  if (video.srcObject) video.srcObject.getTracks().forEach((track) => track.stop());
  video.srcObject = null;
  $('camera').hidden = true;
  $('steady').value = 0;
  $('live-start').disabled = false;
  $('live-stop').disabled = true;
}

$('live-start').addEventListener('click', startLive);
$('live-stop').addEventListener('click', () => {
  stopLive(true);
  $('hint').textContent = t('liveOff');
});

// ---------------------------------------------------------------- photo upload (section 10)
$('photo').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  if (!['image/jpeg', 'image/png', 'image/webp'].includes(file.type)) return showError(t('badType'));
  showError('');
  const rid = newId('scan');
  newResult(rid);
  $('coaching').textContent = t('uploading');
  try {
    const auth = { Authorization: `Bearer ${await token()}`, 'Content-Type': 'application/json' };
    const res = await fetch('/api/v1/uploads', {
      method: 'POST', headers: auth, body: JSON.stringify({ content_type: file.type, size: file.size }),
    });
    const ticket = await res.json();
    if (!res.ok) throw new Error(`${ticket.error.code}: ${ticket.error.message}`);
    // Send exactly the returned headers (the browser sets Content-Length itself).
    const put = await fetch(ticket.url, { method: ticket.method, headers: ticket.headers, body: file });
    if (!put.ok) throw new Error(`upload: HTTP ${put.status}`);
    const image = { kind: 'upload', key: ticket.key };
    await locate();
    const scan = { type: 'scan.start', request_id: rid, image, locale: state.lang };
    if (state.location) scan.location = state.location;
    if (!send(scan)) throw new Error(t('reconnecting'));
  } catch (err) {
    $('coaching').textContent = '';
    $('result').dataset.state = 'failed';
    showError(t('error') + err.message);
  }
});

// ---------------------------------------------------------------- follow-up chat (section 12)
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text) return;
  const rid = newId('chat');
  const message = { type: 'chat.message', request_id: rid, text, locale: state.lang };
  if (state.scan && state.scan.scanId) message.scan_id = state.scan.scanId;
  // The person's district decides which local rule the answer applies.
  if (state.location) message.location = state.location;
  if (!send(message)) return showError(t('reconnecting'));
  $('chat-text').value = '';
  bubble('you', text);
  state.chats.set(rid, { deltas: [], el: bubble('coach', '') });
});

function bubble(who, text) {
  const body = el('p', { textContent: text });
  const label = el('span', { className: 'who', textContent: t(who) });
  $('chat-log').append(el('li', { className: who }, label, body));
  return body;
}

function chatDelta(e) {
  const chat = state.chats.get(e.request_id);
  if (!chat) return;
  chat.deltas[e.index] = e.text;
  chat.el.textContent = chat.deltas.join('');
}

function chatDone(e) {
  const chat = state.chats.get(e.request_id);
  if (!chat) return;
  chat.el.textContent = e.outcome === 'failed' ? t('chatFailed') : e.text;
  chat.el.parentElement.classList.add('done');
  state.chats.delete(e.request_id);
}

// ---------------------------------------------------------------- start
applyLanguage();
connect();
