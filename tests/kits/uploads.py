"""Sample files of every dataset format the Data tab's upload guesses (JSON / JSONL / CSV / Parquet), with the format,
column mapping and stage each must be read as."""
from __future__ import annotations

import json
from pathlib import Path

ALPACA = [{"instruction": f"Add {i} and 2.", "input": "", "output": f"{i + 2}"} for i in range(4)]
SHAREGPT = [{"conversations": [{"from": "human", "value": f"Hi {i}"}, {"from": "gpt", "value": f"Hello {i}!"}]}
            for i in range(3)]
MESSAGES = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Say {i}"},
                          {"role": "assistant", "content": f"{i}"}]} for i in range(3)]
PREFERENCE = [{"question": f"Capital of country {i}?", "chosen": "A city.", "rejected": "No idea."} for i in range(3)]
KTO = [{"instruction": f"Greet {i}", "output": "Hello!", "label": i % 2 == 0} for i in range(4)]
TEXT = [{"text": f"Plain text number {i} for pre-training."} for i in range(3)]

CASES = {  # name: (rows, file type, expected format, expected mapping, stage)
    "alpaca": (ALPACA, ".csv", "alpaca", {"prompt": "instruction", "query": "input", "response": "output"}, "sft"),
    "sharegpt": (SHAREGPT, ".json", "sharegpt", {"messages": "conversations"}, "sft"),
    "messages": (MESSAGES, ".jsonl", "messages", {"messages": "messages"}, "sft"),
    "preference": (PREFERENCE, ".parquet", "preference", {"prompt": "question", "chosen": "chosen",
                                                          "rejected": "rejected"}, "dpo"),
    "kto": (KTO, ".jsonl", "kto", {"prompt": "instruction", "response": "output", "kto_tag": "label"}, "kto"),
    "text": (TEXT, ".csv", "text", {"text": "text"}, "pt"),
}


def write(path: Path, rows: list[dict]) -> Path:
    ext = path.suffix
    if ext == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False))
    elif ext == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        import pyarrow as pa
        table = pa.Table.from_pylist(rows)
        if ext == ".csv":
            import pyarrow.csv as pcsv
            pcsv.write_csv(table, path)
        else:
            import pyarrow.parquet as pq
            pq.write_table(table, path)
    return path


def sample_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {k: write(folder / f"my_{k}{ext}", rows) for k, (rows, ext, *_ ) in CASES.items()}
