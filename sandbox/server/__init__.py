"""Meta sandbox: a local HTTP stand-in for the Graph API endpoints Leadloop calls.

Why it exists: Leadloop's Meta client must cope with paging quirks, token errors, rate
limits, slow answers and Conversions API validation. Meta offers no test double for lead
retrieval, so this server reproduces the documented behaviour (see ``/work/shared/META.md``
in the project) closely enough to drive the client end to end, in-process (tests start it
in a daemon thread on port 0) or as its own process (``python -m sandbox``).

Design notes:

* Standard library only (and `core.ids`, the id rule Leadloop applies, itself pure
  Python) and no Django imports, so nothing here depends on settings.
* One re-entrant lock guards all state. Request handling (apart from fault delays) runs
  under it, which serialises requests; that is fine for a sandbox and rules out races.
* Endpoints are a routing table (:attr:`MetaSandbox.GRAPH_ROUTES`) of functions, so a
  subclass can add or replace endpoints without touching the dispatcher.
* Everything answers Meta-shaped errors; a bug or bad input gives a 4xx/5xx JSON body,
  never a dropped connection.
* The control API under ``/__sandbox__/`` (:mod:`.control`) mirrors the in-process
  helpers so another process can seed data and inject faults.

The modules, from the outside in:

================  =====================================================================
``core``          :class:`MetaSandbox`: lifecycle, routing table, dispatch, recording
``httpd``         the HTTP server: parsing requests and bodies, writing answers
``control``       the control API under ``/__sandbox__/``
``graph``         Graph endpoints for pages, forms, ads and leads; the known fields
``conversions``   the Conversions API stand-in that validates events like Meta
``export``        the lead export (CSV) and its format options
``paging``        cursors and the ``paging`` block of edges
``params``        parsing ``fields``, ``limit``, ``filtering`` and other parameters
``routing``       what an endpoint gets (:class:`GraphContext`) and how routes name it
``store``         the in-memory objects and tokens, seeding helpers, token checks
``faults``        injected faults and empty pages
``errors``        Meta-shaped errors and Meta's codes and wording
``wire``          Meta's JSON and time formats; request and response types
================  =====================================================================

Import the public names from :mod:`sandbox` (``from sandbox import MetaSandbox``).
"""
