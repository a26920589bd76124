/* Matomo page tracking: the tracker's address is filled in at build; the site id comes from the page's script tag. */
(function () {
  var tag = document.currentScript;
  var site = tag && tag.getAttribute("data-matomo-site");
  if (!site) { return; }
  var u = {{ tracker_url | tojson }};
  var _paq = window._paq = window._paq || [];
  _paq.push(["trackPageView"]);
  _paq.push(["enableLinkTracking"]);
  _paq.push(["setTrackerUrl", u + "matomo.php"]);
  _paq.push(["setSiteId", site]);
  var g = document.createElement("script");
  g.async = true;
  g.src = u + "matomo.js";
  document.head.appendChild(g);
})();
