"""Export a story as a picture book: one self-contained HTML page, a PDF, an EPUB 3.

Pure functions over the story view the store hands out (`StoryView`, or the shared
`SharedStory`: the public story JSON) and the media store its pictures live in.
Nothing here knows about tokens, requests or the web framework; the endpoints are wired elsewhere.
book.py lays the book out once; as_html.py, as_pdf.py and as_epub.py each write one format.

Only written pages (status "done") go into the book. A picture is used when its status
is "ready" and its URL names a readable picture in the store; otherwise the page keeps
its text and simply has no picture. Story text is user and model content: it is escaped
everywhere it is put into markup.
"""

from services.gateway.export.as_epub import to_epub
from services.gateway.export.as_html import to_html
from services.gateway.export.as_pdf import to_pdf
from services.gateway.export.book import filename

__all__ = ["filename", "to_epub", "to_html", "to_pdf"]
