"""Child process for tests/real/test_real_storage_crash.py: writes to a
DiskStorage under load and reports each sync on stdout, until it is killed.

    python real_storage_crash_child.py DATA_DIR TERM SEED

Each line `synced LAST COMMIT SNAPSHOT` is printed only after `sync()`
returned: everything it names is durable. Entry data is a function of the
entry's index and term (`payload`), so the parent can check every entry.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chainfire_core.raft.messages import ConfState, Entry, HardState
from chainfire_core.types import Index, NodeId, Term
from real.storage import DiskStorage

SNAPSHOT_EVERY_ENTRIES = 300
KEEP_ENTRIES = 50


def payload(index: int, term: int) -> bytes:
    return f"{index}/{term};".encode() * (index % 13 + 1)


def main() -> None:
    data_dir, term, seed = sys.argv[1], Term(int(sys.argv[2])), int(sys.argv[3])
    rng = random.Random(seed)
    storage = DiskStorage.open(data_dir)
    last_snapshot = storage.snapshot().metadata.index
    while True:
        first = storage.last_index() + 1
        count = rng.choice((1, 1, 4, 16, 64, 256))
        entries = [Entry(term=term, index=Index(first + k), data=payload(first + k, term))
                   for k in range(count)]
        commit = storage.last_index()
        storage.save(HardState(term=term, vote=NodeId(1), commit=commit), entries, None)
        storage.sync()
        if commit - last_snapshot >= SNAPSHOT_EVERY_ENTRIES:
            storage.create_snapshot(commit, ConfState(voters=(NodeId(1),)), b"state@%d" % commit)
            storage.compact(Index(commit - KEEP_ENTRIES))
            last_snapshot = commit
        print(f"synced {storage.last_index()} {commit} {last_snapshot}", flush=True)


if __name__ == "__main__":
    main()
