// kabarfeed console: small progressive enhancements (everything works without it).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Clicking a problem's line number puts the cursor on that line of the editor.
  const editor = document.getElementById("config-text");
  const goTo = (line) => {
    const lines = editor.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    editor.focus();
    editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
    const height = editor.scrollHeight / Math.max(lines.length, 1);
    editor.scrollTop = Math.max(0, (line - 5) * height);
  };
  document.querySelectorAll("a[data-line]").forEach((link) => {
    link.addEventListener("click", (event) => {
      if (!editor) return;
      event.preventDefault();
      goTo(parseInt(link.dataset.line, 10));
    });
  });
  // Live validation: the same check as the Check button, while typing.
  if (editor && editor.dataset.validate) {
    const live = document.getElementById("live");
    const csrf = editor.form.querySelector('input[name="csrf"]').value;
    let timer = 0;
    let seq = 0;
    const show = (result) => {
      live.replaceChildren();
      const status = document.createElement("p");
      status.className = "notice " + (result.valid ? "ok" : "error");
      status.textContent = result.label;
      live.append(status);
      if (!result.problems.length) return;
      const list = document.createElement("ul");
      list.className = "problems";
      for (const problem of result.problems) {
        const item = document.createElement("li");
        if (problem.line) {
          const link = document.createElement("a");
          link.href = "#config-text";
          link.textContent = problem.where;
          link.addEventListener("click", (event) => { event.preventDefault(); goTo(problem.line); });
          item.append(link, " · ");
        }
        const code = document.createElement("code");
        code.textContent = problem.message;
        item.append(code);
        list.append(item);
      }
      live.append(list);
    };
    editor.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const mine = ++seq;
        const body = new FormData();
        body.append("csrf", csrf);
        body.append("text", editor.value);
        try {
          const response = await fetch(editor.dataset.validate, { method: "POST", body, credentials: "same-origin" });
          if (response.ok && mine === seq) show(await response.json());
        } catch (error) { /* offline: the Check button still works */ }
      }, 600);
    });
  }
  // Confirm dangerous buttons.
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
});
