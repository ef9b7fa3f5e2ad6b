"""Operations: health checks, backups and their verification, restore, the ops CLI.

`fdb_status` turns FoundationDB's status document (and `fdbbackup status --json`) into a
pass/warn/fail report; it is pure, so it is tested on recorded documents.
"""
