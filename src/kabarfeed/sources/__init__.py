"""Source adapters: each turns one kind of input (directory, feed URL, push API)
into RawArticles."""
