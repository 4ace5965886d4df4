// Background jobs (slice scans, boundary maps, stress sweeps): poll each element with a
// data-job-url, show its progress text (and percentage, when it has a <progress>), and
// reload the page once every job shown is finished, so the results appear.
(function () {
  "use strict";
  const items = document.querySelectorAll("[data-job-url]");
  if (!items.length) return;
  let pending = items.length;
  items.forEach(function (item) {
    const text = item.querySelector(".job-text");
    const bar = item.querySelector("progress");
    let delay = 1000;
    function poll() {
      fetch(item.dataset.jobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (job) {
          if (text && job.text) text.textContent = job.text;
          if (bar && typeof job.progress === "number") bar.value = job.progress;
          if (job.finished) {
            pending -= 1;
            if (pending === 0) window.location.reload();
          } else {
            delay = Math.min(delay * 1.25, 5000);
            window.setTimeout(poll, delay);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, delay);
  });
})();
