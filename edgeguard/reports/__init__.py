"""Monthly reports (docs/reports.md): the site's month computed from its ledger, drawn with
matplotlib, written as PDF (fonts embedded) or as an HTML folder."""
