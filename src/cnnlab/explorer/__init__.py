"""The explorer: `cnnlab serve RUN`, a local web page to look inside a trained network.

`create_app(run)` is the ASGI app (FastAPI); `probe` keeps one image's every number,
`panels` turns them into what each panel shows, `top` caches the images that excite each
channel most, `upload` checks an uploaded file before it is decoded.
"""

from cnnlab.explorer.app import create_app

__all__ = ["create_app"]
