// Progressive enhancement for the catalog's pages: a "Copy" button next to
// each install command. Without this script the commands are plain text to
// select; nothing else depends on it. Served from this origin under the
// pages' Content-Security-Policy (no inline script anywhere).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) {
    return;
  }
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) {
      continue;
    }
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed: select the text";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
});
