// The header's menu button on narrow screens, and keyboard access to boxes that scroll
// sideways. Loaded on every page (templates/base.html); without it the menu stays open.
(function () {
  "use strict";

  function setUpMenu() {
    const header = document.querySelector(".topbar");
    const button = header && header.querySelector(".menu-toggle");
    const menu = button && document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) return;
    function show(open) {
      button.setAttribute("aria-expanded", String(open));
      header.classList.toggle("menu-open", open);
    }
    header.classList.add("collapsible");
    button.addEventListener("click", function () {
      show(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && header.classList.contains("menu-open")) {
        show(false);
        button.focus();
      }
    });
  }

  // A box whose content is wider than itself can be scrolled with the arrow keys once it
  // takes the focus; boxes that fit again give it back.
  function scrollersTakeFocus() {
    document.querySelectorAll("main .scroll, main table, main pre").forEach(function (box) {
      const scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.tabIndex = 0;
        box.dataset.scrollFocus = "";
      } else if (!scrolls && box.dataset.scrollFocus !== undefined) {
        box.removeAttribute("tabindex");
        delete box.dataset.scrollFocus;
      }
    });
  }

  let pending = null;
  function later() {
    clearTimeout(pending);
    pending = setTimeout(scrollersTakeFocus, 150);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpMenu();
    scrollersTakeFocus();
    window.addEventListener("resize", later);
    window.addEventListener("load", scrollersTakeFocus);
  });
})();
