// MuseTag's page: plain JavaScript over the JSON API (docs/webapp.md); no libraries, works offline.
import { Recorder } from '/static/mic.js';

const $ = (id) => document.getElementById(id);
const state = { info: null, verdicts: { liked: new Set(), disliked: new Set() }, query: {}, recorder: null,
                micColumns: [] };

// ------------------------------------------------------------------------------------------ helpers
function message(text, isError = false) {
  const m = $('message');
  m.textContent = text || '';
  m.className = isError ? 'error' : '';
}

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: 'same-origin', ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail))
      : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

// ------------------------------------------------------------------------------------------ tags + taggram
function showTags(tags) {
  const list = $('tags');
  list.replaceChildren(...tags.map(([t, p]) => el('li', { textContent: `${t} ${p.toFixed(2)}`,
    dataset: { tag: t, p: String(p) } })));
}

function drawTaggram(labels, columns) {
  // columns: [n_windows][n_tags] probabilities; drawn as a heat map (time left to right, tags top down)
  const canvas = $('taggram');
  const ctx = canvas.getContext('2d');
  const labelWidth = 120;
  const rowH = Math.max(8, Math.floor(canvas.height / Math.max(labels.length, 1)));
  canvas.height = rowH * labels.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = `${Math.min(12, rowH - 1)}px sans-serif`;
  ctx.textBaseline = 'middle';
  labels.forEach((l, j) => { ctx.fillStyle = '#333'; ctx.fillText(l, 2, j * rowH + rowH / 2, labelWidth - 4); });
  const colW = (canvas.width - labelWidth) / Math.max(columns.length, 1);
  columns.forEach((col, i) => {
    col.forEach((p, j) => {
      const v = Math.round(255 * (1 - p));
      ctx.fillStyle = `rgb(${v},${v},255)`;
      ctx.fillRect(labelWidth + i * colW, j * rowH, Math.ceil(colW), rowH);
    });
  });
  canvas.dataset.windows = String(columns.length);
}

async function tagUpload(event) {
  event.preventDefault();
  const file = $('upload-file').files[0];
  if (!file) { message('choose an audio file first', true); return; }
  const form = new FormData();
  form.append('audio', file);
  message('tagging…');
  try {
    const out = await api('/api/tag', { method: 'POST', body: form });
    showTags(out.tags);
    drawTaggram(out.taggram.labels, out.taggram.probabilities);
    message(`${file.name}: ${out.duration_s.toFixed(1)} s, ${out.n_windows} windows` +
            (out.warnings.length ? ` (${out.warnings.join(', ')})` : ''));
  } catch (e) { message(e.message, true); }
}

async function similarToUpload() {
  const file = $('upload-file').files[0];
  if (!file) { message('choose an audio file first', true); return; }
  const form = new FormData();
  form.append('audio', file);
  form.append('k', '10');
  await showList('/api/similar', { method: 'POST', body: form }, `tracks like ${file.name}`);
}

// ------------------------------------------------------------------------------------------ microphone
async function micStart() {
  if (!state.info) return;
  state.micColumns = [];
  const rec = new Recorder(state.info.sample_rate, state.info.window_seconds, async (wav) => {
    const form = new FormData();
    form.append('audio', new Blob([wav], { type: 'audio/wav' }), 'mic.wav');
    const out = await api('/api/tag/chunk', { method: 'POST', body: form });
    showTags(out.tags);
    state.micColumns.push(out.taggram.probabilities[0]);
    if (state.micColumns.length > 60) state.micColumns.shift();
    drawTaggram(out.taggram.labels, state.micColumns);
    $('mic-status').textContent = `listening: ${state.micColumns.length} updates`;
    $('mic-status').dataset.updates = String(state.micColumns.length);
  }, (err) => message(err.message, true));
  try {
    await rec.start();
  } catch (e) { message(`microphone: ${e.message}`, true); return; }
  state.recorder = rec;
  $('mic-start').disabled = true;
  $('mic-stop').disabled = false;
  $('mic-status').textContent = 'listening…';
}

function micStop() {
  if (state.recorder) state.recorder.stop();
  state.recorder = null;
  $('mic-start').disabled = false;
  $('mic-stop').disabled = true;
  $('mic-status').textContent = 'stopped';
}

// ------------------------------------------------------------------------------------------ results
async function loadVerdicts() {
  const v = await api('/api/feedback');
  state.verdicts = { liked: new Set(v.liked), disliked: new Set(v.disliked) };
  $('listener').value = v.listener;
}

async function judge(item, verdict, li) {
  try {
    await api('/api/feedback', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item, verdict, query: state.query }) });
    (verdict === 'like' ? state.verdicts.liked : state.verdicts.disliked).add(item);
    (verdict === 'like' ? state.verdicts.disliked : state.verdicts.liked).delete(item);
    li.classList.toggle('liked', verdict === 'like');
    li.classList.toggle('disliked', verdict === 'dislike');
    li.dataset.verdict = verdict;
    message(`${verdict}d ${item}: later results take it into account`);
  } catch (e) { message(e.message, true); }
}

function resultItem(r) {
  const name = r.title || r.path.split('/').pop();
  const li = el('li', { dataset: { id: r.id } });
  if (state.verdicts.liked.has(r.id)) li.classList.add('liked');
  if (state.verdicts.disliked.has(r.id)) li.classList.add('disliked');
  const audio = el('audio', { controls: true, preload: 'metadata', src: r.audio_url });
  audio.addEventListener('loadedmetadata', () => { audio.dataset.duration = audio.duration.toFixed(3); });
  audio.addEventListener('error', () => { audio.dataset.error = '1'; });
  li.append(
    el('div', {}, el('span', { className: 'title', textContent: r.artist ? `${r.artist} – ${name}` : name }),
       el('span', { className: 'score', textContent: `score ${r.score.toFixed(3)}` })),
    el('div', { className: 'tags' }, ...r.tags.map(([t, p]) => el('span', { className: 'chip',
      textContent: `${t} ${p.toFixed(2)}` }))),
    audio,
    el('div', { className: 'actions' },
       el('button', { type: 'button', className: 'like', textContent: '👍 like',
                      onclick: () => judge(r.id, 'like', li) }),
       el('button', { type: 'button', className: 'dislike', textContent: '👎 dislike',
                      onclick: () => judge(r.id, 'dislike', li) }),
       el('button', { type: 'button', className: 'similar', textContent: 'similar',
                      onclick: () => similarTo(r.id, name) }),
       el('button', { type: 'button', className: 'set-from', textContent: 'playlist from',
                      onclick: () => { $('playlist-from').value = r.id; } }),
       el('button', { type: 'button', className: 'set-to', textContent: 'playlist to',
                      onclick: () => { $('playlist-to').value = r.id; } })));
  return li;
}

function renderList(list, title) {
  state.query = list.query || {};
  $('results-title').textContent = title;
  $('results').replaceChildren(...list.results.map(resultItem));
  message(list.results.length ? `${list.results.length} tracks` : 'no results');
}

async function showList(url, options, title) {
  message('searching…');
  try {
    renderList(await api(url, options), title);
  } catch (e) { message(e.message, true); }
}

function similarTo(id, name) {
  return showList(`/api/similar?${new URLSearchParams({ track: id, k: '10' })}`, {}, `tracks like ${name}`);
}

function searchText(event) {
  event.preventDefault();
  const text = $('search-text').value.trim();
  if (text) showList(`/api/search?${new URLSearchParams({ text })}`, {}, `“${text}”`);
}

function searchTags(event) {
  event.preventDefault();
  const tags = $('search-tags').value.trim();
  if (tags) showList(`/api/search?${new URLSearchParams({ tags })}`, {}, `tags: ${tags}`);
}

function playlist(event) {
  event.preventDefault();
  const params = new URLSearchParams({ from: $('playlist-from').value.trim(), to: $('playlist-to').value.trim(),
                                       length: $('playlist-length').value });
  showList(`/api/playlist?${params}`, {}, 'playlist');
}

// ------------------------------------------------------------------------------------------ pictures
function sendImage(file) {
  const form = new FormData();
  form.append('image', file);
  form.append('length', $('playlist-length').value);
  return showList('/api/image/playlist', { method: 'POST', body: form }, `music for ${file.name}`);
}

function setUpImageZone() {
  const zone = $('image-zone');
  zone.hidden = false;
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer.files[0]) sendImage(e.dataTransfer.files[0]);
  });
  $('image-file').addEventListener('change', () => { if ($('image-file').files[0]) sendImage($('image-file').files[0]); });
}

// ------------------------------------------------------------------------------------------ start
function setListener() {
  const name = $('listener').value.trim();
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) { message('listener: 1-64 letters, digits or _ . @ -', true); return; }
  document.cookie = `musetag_listener=${name}; path=/; max-age=315360000; samesite=strict`;
  loadVerdicts().then(() => message(`listening as ${name}`));
}

async function start() {
  $('upload-form').addEventListener('submit', tagUpload);
  $('upload-similar').addEventListener('click', similarToUpload);
  $('mic-start').addEventListener('click', micStart);
  $('mic-stop').addEventListener('click', micStop);
  $('search-form').addEventListener('submit', searchText);
  $('tags-form').addEventListener('submit', searchTags);
  $('playlist-form').addEventListener('submit', playlist);
  $('listener-set').addEventListener('click', setListener);
  try {
    state.info = await api('/api/info');
    await loadVerdicts();
  } catch (e) { message(e.message, true); return; }
  const i = state.info;
  $('model-info').textContent = `${i.tracks} tracks · ${i.labels.length} tags · ${i.sample_rate} Hz, ` +
    `${i.window_seconds} s windows`;
  if (i.image_search) setUpImageZone();
  document.body.dataset.ready = '1';
}

start();
