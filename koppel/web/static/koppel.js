// Koppel's own few lines of JavaScript: a confirmation before destructive forms (or a form's
// destructive button), a copy button for a new API token, and parts of a page that fetch
// themselves again while it is open (the dashboard). Pages work without it; the CSP allows no
// inline script.
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

// <div data-refresh="/path" data-refresh-seconds="15">: its content is fetched again from the
// path every so often, while the page is visible. A failed fetch keeps what is shown.
for (const region of document.querySelectorAll("[data-refresh]")) {
  const seconds = Number(region.dataset.refreshSeconds) || 15;
  window.setInterval(async () => {
    if (document.hidden || region.contains(document.activeElement)) {
      return;
    }
    try {
      const response = await fetch(region.dataset.refresh, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected) {
        window.location.assign(response.url); // the session ended: the sign-in page
      } else if (response.ok) {
        region.innerHTML = await response.text();
        region.dataset.refreshedAt = new Date().toISOString();
      }
    } catch {
      // Offline or the server restarts: try again at the next tick.
    }
  }, seconds * 1000);
}

// The mapping editor: the rule being written is checked as one types (a short pause after the
// last key), and what validation says appears beside the fields; a library function with its
// arguments is added to the transforms as a line.
for (const form of document.querySelectorAll("form[data-check]")) {
  const region = form.querySelector(".rule-check");
  let timer;
  const check = async () => {
    const body = new FormData(form);
    try {
      const response = await fetch(form.dataset.check, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": body.get("csrf_token") },
      });
      if (!response.ok) {
        return;
      }
      const answer = await response.json();
      region.replaceChildren(
        ...answer.issues.map((issue) => {
          const line = document.createElement("p");
          line.className = `issue issue-${issue.severity}`;
          line.textContent = `${issue.field}: ${issue.message}`;
          return line;
        }),
      );
      region.dataset.checked = String(Date.now());
    } catch {
      // Offline: the save checks the rule again.
    }
  };
  form.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 300);
  });
}

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-add-function]") : null;
  if (!button) {
    return;
  }
  const form = button.closest("form");
  const steps = document.getElementById(button.dataset.addFunction);
  const name = form.querySelector("#function-name").value;
  const args = form.querySelector("#function-arguments").value.trim();
  const step = args ? `${name}: ${args}` : name;
  steps.value = steps.value.trim() ? `${steps.value.trim()}\n${step}` : step;
  steps.dispatchEvent(new Event("input", { bubbles: true }));
});
