// The finance UI's one script beside htmx. htmx leaves 4xx answers unswapped by default, but here an
// invalid form comes back with a 400 and its errors next to the fields (a 409 when the case moved
// on meanwhile, with a message saying so): both must replace what is on the page.
// (A file, not an hx-on attribute: the Content-Security-Policy refuses inline script.)
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status === 400 || status === 409) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
