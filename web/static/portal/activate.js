// The activation form: make the phone's key, send only its public half, keep the card.
"use strict";

const page = document.body;
const form = document.getElementById("activate-form");
const message = document.getElementById("activate-message");
const button = form.querySelector("button[type=submit]");

function say(text, kind) {
  message.textContent = text;
  message.className = "message " + (kind || "");
}

async function start() {
  if (!window.isSecureContext || !window.crypto || !crypto.subtle || !window.indexedDB) {
    say(page.dataset.msgUnsupported, "bad");
    button.disabled = true;
    return;
  }
  const wallet = await import(page.dataset.walletModule);
  const held = await wallet.store.load().catch(() => undefined);
  if (held) { say(page.dataset.msgReplaces, "warn"); }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.dataset.busy) return;
    form.dataset.busy = "1";
    button.disabled = true;
    say(page.dataset.msgWorking, "");
    try {
      const pair = await wallet.newDeviceKey();
      const point = await wallet.publicPoint(pair.publicKey);
      const data = new FormData(form);
      const result = await wallet.postJson(form.action, {
        card_number: String(data.get("card_number") || ""),
        birth_date: String(data.get("birth_date") || ""),
        code: String(data.get("code") || ""),
        public_key: wallet.toBase64url(point),
      });
      if (!result.ok) {
        say((result.answer && result.answer.message) || page.dataset.msgFailed, "bad");
        return;
      }
      // Only the private CryptoKey is kept: it cannot be exported, even by this page.
      await wallet.store.save(wallet.recordOf(result.answer, pair.privateKey));
      say(page.dataset.msgDone, "good");
      window.location.assign(page.dataset.cardUrl);
    } catch (error) {
      say(page.dataset.msgFailed, "bad");
    } finally {
      delete form.dataset.busy;
      button.disabled = false;
    }
  });
}

if ("serviceWorker" in navigator && page.dataset.serviceWorker) {
  navigator.serviceWorker.register(page.dataset.serviceWorker, { scope: page.dataset.scope })
    .catch(() => {});
}
start();
