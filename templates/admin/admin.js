// kabarfeed console: small progressive enhancements (everything works without it).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Clicking a problem's line number puts the cursor on that line of the editor.
  const editor = document.getElementById("config-text");
  document.querySelectorAll("a[data-line]").forEach((link) => {
    link.addEventListener("click", (event) => {
      if (!editor) return;
      event.preventDefault();
      const line = parseInt(link.dataset.line, 10);
      const lines = editor.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      editor.focus();
      editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
      const height = editor.scrollHeight / Math.max(lines.length, 1);
      editor.scrollTop = Math.max(0, (line - 5) * height);
    });
  });
  // Confirm dangerous buttons.
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
});
