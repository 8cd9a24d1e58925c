// Koppel's own few lines of JavaScript: a confirmation before destructive forms (or a form's
// destructive button), and a copy button for a new API token. Pages work without it; the CSP
// allows no inline script.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = event.submitter instanceof HTMLElement ? event.submitter : undefined;
  const question =
    button?.dataset.confirm ?? (form instanceof HTMLFormElement ? form.dataset.confirm : undefined);
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) {
    return;
  }
  const field = document.getElementById(button.dataset.copy);
  if (!field) {
    return;
  }
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = button.dataset.copied;
  } catch {
    // Without clipboard access the text stays selected, ready for Ctrl-C.
  }
});
