"""Drop the temporary registry source from poetry.lock and re-stamp its content hash."""

import re
from pathlib import Path

from poetry.factory import Factory

lock = Path("poetry.lock")
text = re.sub(
    r"\n\[package\.source\]\ntype = \"legacy\"\nurl = \"[^\"]+\"\nreference = \"registry\"\n",
    "\n",
    lock.read_text(),
)
content_hash = Factory().create_poetry(Path.cwd()).locker._get_content_hash()
text = re.sub(r'content-hash = "[0-9a-f]+"', f'content-hash = "{content_hash}"', text)
lock.write_text(text)
