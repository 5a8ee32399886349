"""The data service: browsing, tree, search, download links, delete and restore of the
backed-up files, and exports (the exporter).

Modules: ``routes`` (this service's part of the route table), ``api`` (the API function's
entry point), ``store`` (the files table: rows, the File shape, bounded paging),
``files_api`` (list, one file, download link, delete, restore), ``browse`` (tree and
search), ``exports`` (export requests and their status), ``exporter`` (the exporter's
entry point) and ``zipstream`` (a zip written into a multipart upload). Delete and
restore converge the files row through ``handlers.shared.file_index``, the file indexer's
own code.
"""
