// The admin's template preview: choosing another customer reloads the page with their preview.
// (A file, not an onchange attribute: the Content-Security-Policy refuses inline script.)
document.addEventListener("change", (event) => {
  if (event.target.id === "preview-customer") {
    const query = new URLSearchParams(location.search);
    query.set("preview_customer", event.target.value);
    location.search = query.toString();
  }
});
