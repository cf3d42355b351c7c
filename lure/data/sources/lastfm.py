"""Last.fm HetRec 2011 (1,892 users, 17,632 artists): who listened to which artist, and how often.

* ``user_artists.dat``: userID, artistID, weight (play count); tab-separated, header line, CRLF;
* ``artists.dat``: id, name, url, pictureURL (the name is the title);
* ``user_taggedartists.dat`` + ``tags.dat`` (optional): users' tags on artists, used for genres.

Choices (docs/datasets.md): every (user, artist) pair is one interaction; rating = log1p(play count), a
monotone compression of the heavy-tailed counts (implicit feedback, so ``min_rating`` does not apply); there is
no listening time, so timestamps are 0 (``time_kind = "none"``: prepare orders each user's artists randomly with
the spec's seed); the catalogue is artists.dat (item_id = rank of the artist id); genres = the artist's three
most used tags when the tag files are there (ties by tag id), else ""; year unknown (-1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lure.data.sources.base import (
    SOURCES,
    Archive,
    RawDataset,
    SourceDefinition,
    SourceFormatError,
    contiguous,
    interactions_frame,
    items_frame,
    read_delimited,
    require_files,
    users_table,
)
from lure.spec.source import LastFMSource

LASTFM_FILES = ("user_artists.dat", "artists.dat")
TAGGED = "user_taggedartists.dat"
TAGS = "tags.dat"
TOP_TAGS = 3


def artist_genres(folder: Path, artist_ids: np.ndarray) -> np.ndarray:
    """Top-``TOP_TAGS`` tags per artist ("rock|indie|british"), most used first; "" without tags or tag files."""
    out = np.full(len(artist_ids), "", dtype=object)
    if not (folder / TAGGED).is_file() or not (folder / TAGS).is_file():
        return out
    tagged = read_delimited(
        folder / TAGGED,
        "\t",
        ["user", "artist", "tag", "day", "month", "year"],
        {"user": "int64", "artist": "int64", "tag": "int64"},
        header=True,
    )
    tags = read_delimited(folder / TAGS, "\t", ["tag", "name"], {"tag": "int64"}, header=True, encoding="latin-1")
    counts = tagged.groupby(["artist", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["artist", "n", "tag"], ascending=[True, False, True], kind="stable")
    top = counts.groupby("artist").head(TOP_TAGS).merge(tags, on="tag", how="inner")
    top = top.sort_values(["artist", "n", "tag"], ascending=[True, False, True], kind="stable")
    joined = top.groupby("artist", sort=True)["name"].agg(lambda s: "|".join(x.strip() for x in s))
    pos = np.searchsorted(artist_ids, joined.index.to_numpy())
    ok = (pos < len(artist_ids)) & (artist_ids[np.minimum(pos, len(artist_ids) - 1)] == joined.index.to_numpy())
    out[pos[ok]] = joined.to_numpy()[ok]
    return out


def load_lastfm(folder: Path) -> RawDataset:
    """Last.fm HetRec 2011 from ``folder`` (user_artists.dat, artists.dat; tag files optional)."""
    folder = Path(folder)
    require_files(folder, LASTFM_FILES)
    plays = read_delimited(
        folder / "user_artists.dat",
        "\t",
        ["user", "artist", "weight"],
        {"user": "int64", "artist": "int64", "weight": "int64"},
        header=True,
    )
    artists = read_delimited(
        folder / "artists.dat", "\t", ["artist", "name", "url", "picture"], {"artist": "int64"}, header=True
    )
    artists = artists.sort_values("artist", kind="stable").reset_index(drop=True)
    ids = artists["artist"].to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise SourceFormatError(f"{folder / 'artists.dat'}: artist ids are not unique")
    pos = np.minimum(np.searchsorted(ids, plays["artist"].to_numpy()), len(ids) - 1)
    known = ids[pos] == plays["artist"].to_numpy()
    if not known.all():
        bad = int(plays["artist"].to_numpy()[~known][0])
        raise SourceFormatError(f"{folder / 'user_artists.dat'}: artist {bad} is not in artists.dat")
    if (plays["weight"] < 0).any():
        raise SourceFormatError(f"{folder / 'user_artists.dat'}: negative play count")
    if plays.duplicated(["user", "artist"]).any():
        raise SourceFormatError(f"{folder / 'user_artists.dat'}: a (user, artist) pair appears twice")
    user_id, user_raw = contiguous(plays["user"].to_numpy())
    items = items_frame(ids, artists["name"].str.strip().to_numpy(), artist_genres(folder, ids), np.full(len(ids), -1))
    rating = np.log1p(plays["weight"].to_numpy(dtype=np.float64))
    return RawDataset(
        name="lastfm",
        items=items,
        interactions=interactions_frame(user_id, pos, None, rating),
        users=users_table(user_raw),
        time_kind="none",
        explicit=False,
        notes={"plays_total": float(plays["weight"].sum())},
    )


SOURCES.add(
    SourceDefinition(
        "lastfm",
        lambda folder, source: load_lastfm(folder),
        required=LASTFM_FILES,
        archive=Archive(
            "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
            {
                "user_artists.dat": "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b",
                "artists.dat": "4c99dc28397ec559520d5bf5341f4c952c8c416c3de918548f88269b88039806",
            },
        ),
        manual="download https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip and unzip it "
        "there (user_artists.dat, artists.dat, ... directly in {folder}/)",
        spec=LastFMSource,
        reads=("data.source",),
        description="Last.fm HetRec 2011 (1,892 users)",
    )
)
