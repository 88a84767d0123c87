// The card page: holder data and the presentation QR, made and signed on this phone.
//
// The QR is redrawn every `data-step` seconds (30) with a proof stamped with the current
// second; a countdown shows when the next one comes. It works offline (the service worker
// serves this page and its scripts, IndexedDB holds the key and the credential) until the
// credential expires. Online, the credential is refreshed (a request signed by the device
// key) once half its life has passed, and on demand.
"use strict";

const page = document.body;
const STEP = Number(page.dataset.step) || 30;
const $ = (id) => document.getElementById(id);

let wallet = null;
let qr = null;
let record = null;
let nextAt = 0;
let drawing = false;

function show(id, visible) { $(id).hidden = !visible; }

function setState(text, kind) {
  const state = $("card-state");
  state.textContent = text || "";
  state.className = "message " + (kind || "");
}

function expired() {
  return !record || Date.now() >= Date.parse(record.expiresAt);
}

function fillHolder() {
  const h = record.holder;
  $("holder-name").textContent = h.surname + " " + h.given_names;
  $("holder-card").textContent = h.card_number;
  $("holder-birth").textContent = h.birth_date;
  $("holder-sex").textContent = page.dataset["sex" + h.sex] || h.sex;
  $("holder-region").textContent = h.region;
  $("holder-schemes").textContent = h.schemes.join(" ") || "—";
  $("holder-expires").textContent = new Date(record.expiresAt).toLocaleString(
    document.documentElement.lang || undefined, { dateStyle: "medium", timeStyle: "short" });
}

async function draw() {
  if (drawing) return;
  drawing = true;
  try {
    if (expired()) {
      show("qr-box", false);
      setState(page.dataset.msgExpired, "bad");
      return;
    }
    const text = await wallet.presentationText(record.credential, record.privateKey, wallet.nowSeconds());
    const symbol = qr.encode(text, { ecl: "M" });
    const canvas = $("qr");
    qr.drawCanvas(canvas, symbol, { scale: Math.max(2, Math.floor(320 / (symbol.size + 8))), quiet: 4 });
    canvas.dataset.version = String(symbol.version);
    show("qr-box", true);
    nextAt = Date.now() + STEP * 1000;
    tick();
  } catch (error) {
    setState(page.dataset.msgQrFailed, "bad");
  } finally {
    drawing = false;
  }
}

function tick() {
  const left = Math.max(0, Math.ceil((nextAt - Date.now()) / 1000));
  $("countdown").textContent = page.dataset.msgCountdown.replace("%(seconds)s", String(left));
  $("countdown-bar").value = left;
  if (left <= 0) draw();
}

function refreshDue() {
  if (!record) return false;
  const issued = Date.parse(record.issuedAt);
  const expires = Date.parse(record.expiresAt);
  return Date.now() >= issued + (expires - issued) / 2;
}

async function refresh(force) {
  if (!record || !navigator.onLine || (!force && !refreshDue())) return;
  const button = $("refresh");
  button.disabled = true;
  try {
    const request = await wallet.refreshRequest(record.credential, record.privateKey, wallet.nowSeconds());
    const result = await wallet.postJson(page.dataset.refreshUrl, { request: wallet.toBase64url(request) });
    if (result.ok) {
      record = wallet.recordOf(result.answer, record.privateKey);
      await wallet.store.save(record);
      fillHolder();
      setState(page.dataset.msgRefreshed, "good");
      draw();
    } else if (result.status === 409) {
      setState((result.answer && result.answer.message) || page.dataset.msgNotActive, "bad");
    } else {
      setState((result.answer && result.answer.message) || page.dataset.msgRefreshFailed, "warn");
    }
  } catch (error) {
    setState(page.dataset.msgOffline, "warn");
  } finally {
    button.disabled = false;
  }
}

async function start() {
  if (!window.isSecureContext || !window.crypto || !crypto.subtle || !window.indexedDB) {
    setState(page.dataset.msgUnsupported, "bad");
    return;
  }
  [wallet, qr] = await Promise.all([import(page.dataset.walletModule), import(page.dataset.qrModule)]);
  record = await wallet.store.load().catch(() => undefined);
  if (!record) { show("no-card", true); return; }
  show("card", true);
  fillHolder();
  await draw();
  setInterval(tick, 1000);
  $("refresh").addEventListener("click", () => refresh(true));
  $("forget").addEventListener("click", async () => {
    if (!window.confirm(page.dataset.msgForget)) return;
    await wallet.store.clear();
    window.location.reload();
  });
  window.addEventListener("online", () => { setState("", ""); refresh(false); });
  window.addEventListener("offline", () => setState(page.dataset.msgOfflineOk, ""));
  refresh(false);
}

if ("serviceWorker" in navigator && page.dataset.serviceWorker) {
  navigator.serviceWorker.register(page.dataset.serviceWorker, { scope: page.dataset.scope })
    .catch(() => {});
}
start();
