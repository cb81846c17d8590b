"""Verified, resumable, parallel downloads: Hugging Face repos pinned to a commit, and plain URLs.

hub.py lists a repo's files with their hashes, transport.py speaks HTTP (redirects, token, retries),
engine.py moves the bytes and verifies them, archive.py checks and unpacks tar.gz archives,
command.py is the `simdoctor download` command. manifest.py records what a download verified (the weights
probe reads it back); hfcache.py links verified files into the Hugging Face cache layout the agent loads from.
"""

from __future__ import annotations


class DownloadError(Exception):
    """A download that cannot go on; the message is one line for the user, never holding the token."""
