"""Export a session as a zip (media + JSONL + CSV) and import it back as a new session.

The zip holds manifest.json (format, counts, SHA-256 of every media file), session.json (the
spec), cells.jsonl, votes.jsonl / votes.csv, ratings.jsonl / ratings.csv and media/ (inputs/ and
one cell_<n>/ folder per generated cell). Paths inside the JSON files are zip paths (media/...).
Import checks every name and hash before it writes anything and refuses unsafe archives.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import shutil
import stat
import uuid
import zipfile
from pathlib import Path
from typing import Any

from codi import __version__
from codi.errors import CoDiUserError
from codi.evaluation.spec import SessionSpec
from codi.evaluation.store import CELL_STATUSES, CHOICES, Cell, EvaluationStore, normalize_rater

FORMAT, FORMAT_VERSION = "codi-evaluation-session", 1
TABLES = ("manifest.json", "session.json", "cells.jsonl", "votes.jsonl", "votes.csv",
          "ratings.jsonl", "ratings.csv")
VOTE_COLUMNS = ("rater", "prompt_id", "seed", "system_a", "system_b", "choice", "created_at")
RATING_COLUMNS = ("rater", "prompt_id", "system", "seed", "criterion", "score", "comment",
                  "created_at")
#: Refuse archives that would unpack to more than this (zip bombs).
MAX_UNPACKED_BYTES = 20 * 2**30


def _zip_path(stored: str, session_id: str) -> str:
    """sessions/<id>/inputs/x → media/inputs/x; sessions/<id>/media/cell_3/y → media/cell_3/y."""
    prefix = f"sessions/{session_id}/"
    if not stored.startswith(prefix):
        raise CoDiUserError(f"{stored} is not inside this session's folder; it cannot be exported.")
    rest = stored.removeprefix(prefix)
    return "media/" + rest.removeprefix("media/")


def _stored_path(zip_path: str, session_id: str) -> str:
    """The inverse of `_zip_path` for a new session id."""
    rest = zip_path.removeprefix("media/")
    folder = "" if rest.startswith("inputs/") else "media/"
    return f"sessions/{session_id}/{folder}{rest}"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def export_session(store: EvaluationStore, session_id: str, data_dir: Path,
                   dest_zip: Path) -> Path:
    """Write the session to `dest_zip` (see the module docstring); returns its path."""
    data_dir, dest_zip = Path(data_dir), Path(dest_zip)
    info = store.session(session_id)
    spec = SessionSpec.from_dict(info["spec"])
    media: dict[str, Path] = {}
    for prompt in spec.prompts:
        for item in prompt.inputs:
            if item.modality != "text":
                name = _zip_path(item.value, session_id)
                media[name], item.value = data_dir / item.value, name
    cells = []
    for cell in store.cells(session_id):
        outputs = {}
        for modality, stored in cell.outputs.items():
            outputs[modality] = name = _zip_path(stored, session_id)
            media[name] = data_dir / stored
        cells.append({"prompt_id": cell.prompt_id, "system": cell.system, "seed": cell.seed,
                      "status": cell.status, "outputs": outputs, "metadata": cell.metadata,
                      "error": cell.error, "updated_at": cell.updated_at})
    missing = sorted(name for name, path in media.items() if not path.is_file())
    if missing:
        raise CoDiUserError(f"Cannot export: {len(missing)} media file(s) are missing from "
                            f"{data_dir} (first: {missing[0]}).")
    votes = [{k: v[k] for k in VOTE_COLUMNS} for v in store.votes(session_id)]
    ratings = [{k: r[k] for k in RATING_COLUMNS} for r in store.ratings(session_id)]
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "codi_studio_version": __version__,
        "session_id": session_id, "name": info["name"], "created_at": info["created_at"],
        "counts": {"cells": len(cells), "votes": len(votes), "ratings": len(ratings)},
        "media": {name: _sha256(path.read_bytes()) for name, path in sorted(media.items())},
    }
    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    partial = dest_zip.with_name(dest_zip.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        archive.writestr("session.json", json.dumps(spec.to_dict(), indent=2, ensure_ascii=False))
        archive.writestr("cells.jsonl", _jsonl(cells))
        archive.writestr("votes.jsonl", _jsonl(votes))
        archive.writestr("votes.csv", _csv(votes, VOTE_COLUMNS))
        archive.writestr("ratings.jsonl", _jsonl(ratings))
        archive.writestr("ratings.csv", _csv(ratings, RATING_COLUMNS))
        for name, path in sorted(media.items()):
            archive.write(path, name, compress_type=_compression(name))
    partial.replace(dest_zip)
    return dest_zip


def _compression(name: str) -> int:
    """Media that is already compressed is stored as is."""
    return zipfile.ZIP_STORED if name.endswith((".png", ".mp4", ".jpg", ".jpeg")) else (
        zipfile.ZIP_DEFLATED)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- import -------------------------------------------------------------------------------------

def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CoDiUserError(f"Not a valid CoDi evaluation export: {message}")


def safe_member(name: str) -> bool:
    """A relative, normalised zip path that stays inside the folder it unpacks into."""
    return (bool(name) and "\\" not in name and "\x00" not in name and not name.startswith("/")
            and ":" not in name.split("/")[0] and posixpath.normpath(name) == name
            and not any(part in ("", ".", "..") for part in name.split("/")))


def _check_members(archive: zipfile.ZipFile) -> set[str]:
    names = set()
    for member in archive.infolist():
        if member.is_dir():
            continue
        if not safe_member(member.filename):
            raise CoDiUserError(f"Refusing the archive: the entry {member.filename!r} would be "
                                "written outside its folder.")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise CoDiUserError(f"Refusing the archive: {member.filename!r} is a symbolic link.")
        _check(member.filename in TABLES or member.filename.startswith("media/"),
               f"unexpected entry {member.filename!r}.")
        names.add(member.filename)
    _check(sum(m.file_size for m in archive.infolist()) <= MAX_UNPACKED_BYTES,
           "it unpacks to more than 20 GiB.")
    return names


def _read_json(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except KeyError:
        raise CoDiUserError(f"Not a valid CoDi evaluation export: {name} is missing.") from None
    except (UnicodeDecodeError, ValueError):
        raise CoDiUserError(f"Not a valid CoDi evaluation export: {name} is not JSON.") from None


def _read_jsonl(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    try:
        text = archive.read(name).decode("utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except KeyError:
        raise CoDiUserError(f"Not a valid CoDi evaluation export: {name} is missing.") from None
    except (UnicodeDecodeError, ValueError):
        raise CoDiUserError(f"Not a valid CoDi evaluation export: {name} is not JSONL.") from None
    _check(all(isinstance(row, dict) for row in rows), f"{name} holds non-object lines.")
    return rows


def _clean_records(spec: SessionSpec, cells: list[dict], votes: list[dict],
                   ratings: list[dict]) -> tuple[list[dict], list[dict]]:
    """Check the records against the spec; returns the votes and ratings with proper types."""
    systems, prompts = {s.name for s in spec.systems}, {p.id for p in spec.prompts}
    try:
        keys = {(c["prompt_id"], c["system"], int(c["seed"])) for c in cells}
        expected = {(p, s, seed) for p in prompts for s in systems for seed in spec.seeds}
        _check(keys == expected and len(cells) == len(expected),
               "cells.jsonl does not hold one cell per prompt × system × seed.")
        _check(all(c["status"] in CELL_STATUSES and isinstance(c["outputs"], dict)
                   for c in cells), "cells.jsonl holds a bad status or outputs.")
        clean_votes = [{"rater": normalize_rater(v["rater"]), "prompt_id": v["prompt_id"],
                        "seed": int(v["seed"]), "system_a": v["system_a"],
                        "system_b": v["system_b"], "choice": v["choice"],
                        "created_at": str(v.get("created_at") or "")} for v in votes]
        for v in clean_votes:
            _check(v["choice"] in CHOICES and v["prompt_id"] in prompts
                   and {v["system_a"], v["system_b"]} <= systems
                   and v["system_a"] != v["system_b"] and v["seed"] in spec.seeds,
                   "votes.jsonl holds a vote on an unknown prompt, system or seed.")
        clean_ratings = [{"rater": normalize_rater(r["rater"]), "prompt_id": r["prompt_id"],
                          "system": r["system"], "seed": int(r["seed"]),
                          "criterion": r["criterion"], "score": int(r["score"]),
                          "comment": str(r.get("comment") or ""),
                          "created_at": str(r.get("created_at") or "")} for r in ratings]
        for r in clean_ratings:
            _check((r["prompt_id"], r["system"], r["seed"]) in keys
                   and r["criterion"] in spec.criteria and 1 <= r["score"] <= 5,
                   "ratings.jsonl holds a rating of an unknown cell or criterion.")
    except (KeyError, TypeError, ValueError) as error:
        raise CoDiUserError(
            f"Not a valid CoDi evaluation export: a record is incomplete ({error}).") from None
    return clean_votes, clean_ratings


def import_session(store: EvaluationStore, zip_path: Path, data_dir: Path) -> str:
    """Import an exported zip as a new session (new id; cells, votes, ratings and media
    restored); returns its id. Unsafe or malformed archives raise CoDiUserError, and nothing is
    left behind."""
    data_dir = Path(data_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CoDiUserError(
            f"{Path(zip_path).name} is not a readable zip file ({error}).") from None
    with archive:
        names = _check_members(archive)
        manifest = _read_json(archive, "manifest.json")
        _check(isinstance(manifest, dict) and manifest.get("format") == FORMAT,
               "manifest.json does not describe a CoDi evaluation session.")
        _check(isinstance(manifest.get("version"), int), "manifest.json has no version.")
        _check(manifest["version"] <= FORMAT_VERSION,
               "it was written by a newer CoDi Studio; upgrade to import it.")
        spec = SessionSpec.from_dict(_read_json(archive, "session.json"))
        spec.validate()
        cells = _read_jsonl(archive, "cells.jsonl")
        votes, ratings = _read_jsonl(archive, "votes.jsonl"), _read_jsonl(archive, "ratings.jsonl")
        votes, ratings = _clean_records(spec, cells, votes, ratings)
        hashes = manifest.get("media")
        _check(isinstance(hashes, dict), "manifest.json lists no media checksums.")
        referenced = {i.value for p in spec.prompts for i in p.inputs if i.modality != "text"}
        referenced |= {path for c in cells for path in c["outputs"].values()}
        for name in referenced:
            _check(isinstance(name, str) and name.startswith("media/") and name in names
                   and name in hashes,
                   f"{name} is referenced but not in the archive.")
        session_id = uuid.uuid4().hex[:12]
        folder = data_dir / "sessions" / session_id
        try:
            for name in sorted(referenced):
                data = archive.read(name)
                _check(_sha256(data) == hashes[name], f"{name} is damaged (checksum mismatch).")
                target = data_dir / _stored_path(name, session_id)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            for prompt in spec.prompts:
                for item in prompt.inputs:
                    if item.modality != "text":
                        item.value = _stored_path(item.value, session_id)
            rows = [Cell(0, session_id, c["prompt_id"], c["system"], int(c["seed"]), c["status"],
                         {m: _stored_path(p, session_id) for m, p in c["outputs"].items()},
                         c.get("metadata") or {}, c.get("error"), c.get("updated_at") or "")
                    for c in cells]
            store.add_session(session_id, spec, manifest.get("created_at"), rows, votes, ratings)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return session_id
