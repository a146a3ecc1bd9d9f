"""The daily digest: who is due (schedule), which articles (selection), and
the rendered message (render + message). Pure code; the store and the
delivery engine are joined by the CLI, the web app and the jobs."""
