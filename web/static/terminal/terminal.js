// The terminal page: a USB scanner types the code and Enter into one field; the verdict
// appears without a page load, and the field is emptied and focused for the next scan.
// The camera option uses BarcodeDetector where the browser has it.
"use strict";

const page = document.body;
const form = document.getElementById("scan-form");
const input = document.getElementById("scan");
const $ = (id) => document.getElementById(id);
let busy = false;

function text(id, value) { $(id).textContent = value == null ? "" : String(value); }

function render(verdict) {
  const box = $("verdict");
  box.hidden = false;
  box.className = "verdict " + (verdict.valid ? "valid" : "invalid");
  text("verdict-word", verdict.valid ? page.dataset.labelValid : page.dataset.labelInvalid);
  text("verdict-reason", verdict.reason_text);
  $("verdict-reason").dataset.reason = verdict.reason;
  text("verdict-detail", verdict.detail);
  const card = verdict.card;
  $("holder").hidden = !card;
  const photo = $("holder-photo");
  if (card) {
    text("holder-name", card.surname + " " + card.given_names);
    text("holder-card", card.card_number);
    text("holder-birth", card.birth_date);
    text("holder-sex", page.dataset["sex" + card.sex] || card.sex);
    text("holder-region", card.region);
    text("holder-schemes", card.schemes.join(" "));
    text("holder-evidence", card.evidence_text);
    text("holder-expires", card.expires_text);
    if (card.photo_url) { photo.src = card.photo_url; photo.hidden = false; }
    else { photo.removeAttribute("src"); photo.hidden = true; }
  } else {
    photo.removeAttribute("src");
    photo.hidden = true;
  }
  text("last-sync", verdict.last_sync_text || page.dataset.labelNever);
}

async function check(scanned) {
  if (busy || !scanned.trim()) return;
  busy = true;
  $("verdict").className = "verdict checking";
  text("verdict-word", page.dataset.msgChecking);
  try {
    const body = new FormData(form);
    body.set("qr", scanned);
    const response = await fetch(form.action, {
      method: "POST",
      body,
      headers: { "Accept": "application/json", "X-CSRFToken": form.elements.csrf_token.value },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (error) {
    render({ valid: false, reason: "terminal_error", reason_text: page.dataset.msgFailed, detail: "", card: null });
  } finally {
    busy = false;
    input.value = "";
    input.focus();
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  check(input.value);
});

// A scanner types into whatever has focus: keep it on the field, unless the clerk is using
// another control (the camera, the sync button, the language links).
input.addEventListener("blur", () => {
  setTimeout(() => {
    const active = document.activeElement;
    if (!active || active === document.body) input.focus();
  }, 150);
});

async function startCamera() {
  const note = $("camera-note");
  const video = $("camera-view");
  try {
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    note.textContent = page.dataset.msgCameraOn;
    const look = async () => {
      if (video.hidden) return;
      try {
        const found = await detector.detect(video);
        if (found.length > 0 && !busy) {
          await check(found[0].rawValue);
          await new Promise((resolve) => setTimeout(resolve, 1500));
        }
      } catch (error) { /* a frame that could not be read: try the next one */ }
      requestAnimationFrame(look);
    };
    look();
  } catch (error) {
    note.textContent = page.dataset.msgNoCamera;
  }
}

const camera = $("camera");
if ("BarcodeDetector" in window && navigator.mediaDevices) {
  camera.hidden = false;
  camera.addEventListener("click", () => {
    const video = $("camera-view");
    if (!video.hidden) {
      video.hidden = true;
      (video.srcObject ? video.srcObject.getTracks() : []).forEach((t) => t.stop());
      return;
    }
    startCamera();
  });
} else {
  $("camera-note").textContent = page.dataset.msgNoCamera;
}
input.focus();
