"""Files sent with a message: documents (every model) and images (vision models).

* `documents`: PDF, plain text, Markdown, HTML and DOCX → text with page numbers.
* `docsearch`: documents chunked and indexed once, searched at every question with the web
  search's own ranking stage; sources numbered together with web sources.
* `images`: validation and server-side re-encoding (Pillow), OpenAI-style content parts.

Nothing here imports Gradio or SQL. Every refusal is an `AttachmentError` whose message is
one line fit to show the user.
"""

from __future__ import annotations


class AttachmentError(ValueError):
    """A file the app will not take, with one user-facing line saying why."""


__all__ = ["AttachmentError"]
