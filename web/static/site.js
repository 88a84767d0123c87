// cardsys office pages. Loaded as an external file: the Content Security Policy allows no
// inline script. Everything here is a convenience; the server checks the same rules again.
"use strict";

(function () {
  // ISO 7064 MOD 11-2, as cardsys.ids checks resident ID numbers: the weight of position i
  // (0-based) is 2^(17-i) mod 11, and the check character is (12 - sum mod 11) mod 11.
  var CHECK = "0123456789X";

  function checkCharacter(body) {
    var sum = 0;
    for (var i = 0; i < 17; i++) {
      var weight = 1;
      for (var k = 0; k < 17 - i; k++) { weight = (weight * 2) % 11; }
      sum += Number(body.charAt(i)) * weight;
    }
    return CHECK.charAt((12 - (sum % 11)) % 11);
  }

  function birthDate(text) {
    var y = Number(text.slice(6, 10)), m = Number(text.slice(10, 12)), d = Number(text.slice(12, 14));
    var date = new Date(Date.UTC(y, m - 1, d));
    if (y < 1900 || date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) {
      return null;
    }
    return text.slice(6, 10) + "-" + text.slice(10, 12) + "-" + text.slice(12, 14);
  }

  // Returns [problem message or "", birth date or null].
  function checkIdNumber(input, text) {
    if (!/^[0-9]{17}[0-9X]$/.test(text)) { return [input.dataset.msgFormat, null]; }
    var born = birthDate(text);
    if (born === null) { return [input.dataset.msgDate, null]; }
    if (checkCharacter(text.slice(0, 17)) !== text.charAt(17)) { return [input.dataset.msgCheck, null]; }
    return ["", born];
  }

  function watchIdNumber(input) {
    var hint = document.getElementById(input.id + "-hint");
    var target = input.dataset.birthTarget ? document.getElementById(input.dataset.birthTarget) : null;
    function update() {
      var text = input.value.trim().toUpperCase();
      var result = text === "" ? ["", null] : checkIdNumber(input, text);
      input.setCustomValidity(result[0]);
      if (hint) {
        hint.textContent = text === "" ? "" : (result[0] || input.dataset.msgOk);
        hint.className = "hint " + (result[0] ? "bad" : "good");
      }
      if (result[1] && target && !target.value) { target.value = result[1]; }
    }
    input.addEventListener("input", update);
    update();
  }

  // A form marked data-once is sent once: a second click while the first request is under way
  // does nothing (the server also refuses a repeated form key).
  function sendOnce(form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      form.querySelectorAll("button").forEach(function (button) { button.setAttribute("aria-busy", "true"); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-id-number]").forEach(watchIdNumber);
    document.querySelectorAll("form[data-once]").forEach(sendOnce);
  });
})();
