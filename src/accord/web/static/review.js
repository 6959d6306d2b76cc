// Match review: keyboard shortcuts (m merge, n not the same, s skip, ? help).
// Keys are ignored while typing in a field, and with Ctrl, Alt or Meta held, so the
// browser's own shortcuts keep working. A decision is sent once: further keys wait for
// the next pair's page.
(function () {
  "use strict";

  var sent = false;

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function help() { return document.getElementById("keys-help"); }

  function toggleHelp() {
    var dialog = help();
    if (!dialog) { return; }
    if (dialog.open) { dialog.close(); } else { dialog.showModal(); }
  }

  function press(key) {
    var button = document.querySelector('#decide-form button[data-key="' + key + '"]');
    if (!button || sent) { return false; }
    sent = true;
    document.body.classList.add("sending");
    button.click();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var dialog = help();
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (dialog && dialog.open) { return; }
    if ((event.key === "m" || event.key === "n" || event.key === "s") && press(event.key)) {
      event.preventDefault();
    }
  });

  // a page shown again from the back-forward cache takes keys again
  window.addEventListener("pageshow", function () {
    sent = false;
    document.body.classList.remove("sending");
  });

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("decide-form");
    if (form) {
      form.addEventListener("submit", function () { sent = true; });
    }
    var button = document.getElementById("keys-button");
    if (button) { button.addEventListener("click", toggleHelp); }
    // ready for the next key: focus the pair's heading, not a field
    var heading = document.getElementById("pair-heading");
    if (heading) { heading.focus({ preventScroll: true }); }
  });
}());
