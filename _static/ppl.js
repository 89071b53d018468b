// Small fixes to the theme's behaviour, loaded on every page of the book.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Narrow screens: the header has two buttons of each kind (.primary-toggle opens the chapter
  // list, .secondary-toggle the page contents), and the theme's script binds only the first of
  // each, which is the hidden one, so the visible button did nothing (pydata-sphinx-theme #2451).
  // The visible buttons pass their click on to the bound one.
  for (const kind of [".primary-toggle", ".secondary-toggle"]) {
    const buttons = Array.from(document.querySelectorAll(kind));
    const bound = buttons[0];
    for (const button of buttons.slice(1)) {
      button.addEventListener(
        "click",
        (event) => {
          event.preventDefault();
          event.stopImmediatePropagation();
          bound.click();
        },
        true,
      );
    }
  }

  // The "download .ipynb" entry downloads the notebook instead of showing its JSON.
  document
    .querySelectorAll('.dropdown-download-buttons a[href$=".ipynb"], a.download-ipynb-button')
    .forEach((link) => {
      link.setAttribute("download", link.getAttribute("href").split("/").pop());
      link.removeAttribute("target");
    });
});

// Long dotted names (`ppl.infer.trace_elbo.Trace_ELBO`) in inline code may break after a dot or
// a slash, so tables fit a laptop's column and paragraphs a phone (<wbr> copies as nothing).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".bd-article code.literal, .bd-article .sig").forEach((code) => {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    for (const text of texts) {
      if (!/[^./][./]./.test(text.data)) continue;
      const pieces = document.createDocumentFragment();
      text.data.split(/(?<=[^./][./])(?=.)/).forEach((part, i) => {
        if (i) pieces.appendChild(document.createElement("wbr"));
        pieces.appendChild(document.createTextNode(part));
      });
      text.parentNode.replaceChild(pieces, text);
    }
  });
});

// A display equation wider than the column is typeset smaller until it fits (down to 60%),
// and scrolls sideways only beyond that: on a phone most equations stay whole on screen.
function fitDisplayMath() {
  document.querySelectorAll('mjx-container[display="true"]').forEach((box) => {
    box.style.fontSize = "";
    const ratio = box.clientWidth / box.scrollWidth;
    if (ratio < 1) box.style.fontSize = `${Math.max(0.6, ratio * 0.98) * 100}%`;
  });
}
window.addEventListener("load", () => {
  const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
  if (typeset) {
    typeset.then(fitDisplayMath);
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(fitDisplayMath, 150);
    });
  }
});
