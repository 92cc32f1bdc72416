"""What a run writes: resumable TSV files and every row builder.

The TSV writer and reader (:mod:`.tsv`), the checks of a read table against what its rows
claim (:mod:`.checks`) and one function per kind of row, with its columns (:mod:`.rows`).
"""
