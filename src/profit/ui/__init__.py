"""The study's web page: ``page.html`` with ``page.css`` and ``page.js`` (plain DOM and SVG, no library).

``profit ui`` serves it live (the page fetches ``api/snapshot`` every 2 s); ``profit report`` writes it as one
self-contained file with the snapshot embedded in ``<script id="profit-data" type="application/json">``.
The placeholders ``<!--PROFIT:STYLE-->``, ``<!--PROFIT:SCRIPT-->`` and ``<!--PROFIT:DATA-->`` in
``page.html`` are where the CSS, the JS and the embedded data go.
"""
