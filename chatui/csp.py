"""The Content-Security-Policy every response carries: the browser-enforced second line
behind sanitize.py. Whatever slips into a rendered message, the page may not load images
or media from other hosts, embed frames or plugins, submit forms elsewhere, or change its
base URL; and only Hugging Face may frame it (a Space shows the app in an iframe there).

Scripts and styles stay 'unsafe-inline': Gradio inlines its config, theme and the app's
css/js into the page. Script injection is already stopped by Gradio's sanitizer; this
policy is about content that loads or navigates.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FRAME_ANCESTORS", "content_security_policy", "ContentSecurityPolicy"]

# A Space embeds the app from huggingface.co; the app itself lives on <owner>-<name>.hf.space.
FRAME_ANCESTORS = ("'self'", "https://huggingface.co", "https://*.hf.space")


def content_security_policy(image_hosts: Iterable[str] = ()) -> str:
    """The policy, with `render.image_hosts` allowed for images and media (https only)."""
    extra = " ".join(f"https://{h}" for h in image_hosts)
    media = f"'self' data: blob: {extra}".strip()
    directives = {
        "default-src": "'self'",
        # 'unsafe-eval': Gradio's plots (the Feedback tab's) compile Vega expressions;
        # without it they draw nothing (checked in Chromium).
        "script-src": "'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": media,
        "media-src": media,
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "worker-src": "'self' blob:",
        "frame-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": " ".join(FRAME_ANCESTORS),
    }
    return "; ".join(f"{k} {v}" for k, v in directives.items())


class ContentSecurityPolicy:
    """Plain ASGI middleware (not BaseHTTPMiddleware, which would get between Gradio's
    streaming responses and the client's disconnects): adds the header to every response."""

    def __init__(self, app, policy: str):
        self.app = app
        self.header = (b"content-security-policy", policy.encode("latin-1"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers") or []
                           if h[0].lower() != b"content-security-policy"]
                message = {**message, "headers": [*headers, self.header]}
            await send(message)

        await self.app(scope, receive, send_with_policy)
