-- callvault catalog, SQLite: sealed notes. Personal text a protocol sends about a call (a SIPREC
-- session's metadata names its participants) is kept only sealed, each beside the ledger entry
-- that says when it came (same recording, same seq), and is deleted with the caller's number when
-- the recording's audio is destroyed: the tombstone's ledger says a note was kept, never what it
-- held.

CREATE TABLE sealed_notes (
    recording_id TEXT    NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    sealed       BLOB    NOT NULL,
    PRIMARY KEY (recording_id, seq),
    FOREIGN KEY (recording_id, seq) REFERENCES ledger (recording_id, seq)
) STRICT, WITHOUT ROWID;
