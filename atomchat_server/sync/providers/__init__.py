"""The stream providers: one module per stream, each filling in its part of
an answer (sync/answer.py), complete or since a position. They import no
one another (an import-linter contract): what one needs of another it reads
from the answer, which SyncBuilder hands them in order."""
