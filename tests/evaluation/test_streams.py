"""Test streams: reproducible from a seed, SNR as asked, ground truth on the voiced part,
WAV + label files that load back exactly."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.audio_io import write_wav
from keywire.protocol.errors import ConfigError
from keywire.training import streams as st


def _pool(background_folder):
    return st.BackgroundPool(st.audio_files([background_folder]))


def test_same_seed_same_streams_and_snr_changes_only_the_keyword_level(sc_folder, background_folder):
    clips = st.keyword_clips(sc_folder)
    assert {c.keyword for c in clips} == {"yes", "no"}  # _unknown_ is never a keyword
    cfg = st.StreamConfig(seed=3, snr_db=10.0, stream_s=40.0)
    a = st.build_positive_streams(clips, _pool(background_folder), cfg)
    b = st.build_positive_streams(clips, _pool(background_folder), cfg)
    assert [s.name for s in a] == [s.name for s in b]
    assert all(np.array_equal(x.samples, y.samples) for x, y in zip(a, b))
    assert sum(len(s.occurrences) for s in a) == len(clips)
    other_seed = st.build_positive_streams(clips, _pool(background_folder), cfg.with_(seed=4))
    assert not np.array_equal(a[0].samples[: len(other_seed[0].samples)],
                              other_seed[0].samples[: len(a[0].samples)])
    # other SNR: same layout and background, only the keyword level moves
    c = st.build_positive_streams(clips, _pool(background_folder), cfg.with_(snr_db=0.0))
    assert [o.start_s for s in a for o in s.occurrences] == [o.start_s for s in c for o in s.occurrences]
    sr = cfg.sample_rate
    for x, y in zip(a, c):
        for o in x.occurrences:
            i0, i1 = int(o.start_s * sr), int(o.end_s * sr)
            assert st.rms_dbfs(x.samples[i0:i1]) > st.rms_dbfs(y.samples[i0:i1]) + 5.0


def test_keyword_level_matches_requested_snr(sc_folder, background_folder):
    clips = st.keyword_clips(sc_folder)
    pool = _pool(background_folder)
    cfg = st.StreamConfig(seed=1, snr_db=20.0, stream_s=1000.0)
    [s] = st.build_positive_streams(clips, pool, cfg)
    # rebuild the bed alone by mixing at a vanishing SNR, then compare keyword vs background
    [quiet] = st.build_positive_streams(clips, pool, cfg.with_(snr_db=-200.0))
    sr = cfg.sample_rate
    measured = []
    for o in s.occurrences:
        i0, i1 = int(round(o.start_s * sr)), int(round(o.end_s * sr))
        kw = s.samples[i0:i1].astype(float) - quiet.samples[i0:i1].astype(float)
        bed = quiet.samples[max(0, i0 - sr // 2):i1 + sr // 2]
        measured.append(st.rms_dbfs(kw) - st.rms_dbfs(bed))
    assert np.median(measured) == pytest.approx(20.0, abs=1.0)


def test_gaps_follow_the_spacing_and_truth_brackets_the_voice(sc_folder, background_folder):
    clips = st.keyword_clips(sc_folder)
    cfg = st.StreamConfig(seed=2, min_gap_s=4.0, max_gap_s=6.0, stream_s=1000.0)
    [s] = st.build_positive_streams(clips, _pool(background_folder), cfg)
    occ = s.occurrences
    gaps = [b.start_s - a.end_s for a, b in zip(occ, occ[1:])]
    assert min(gaps) >= 4.0 - 0.02 and max(gaps) <= 6.0 + 0.02
    for o in occ:
        assert 0.1 < o.end_s - o.start_s <= 1.2  # a spoken word, not the whole padded clip


def test_background_streams_are_keyword_free_and_have_the_asked_length(background_folder):
    cfg = st.StreamConfig(seed=5, stream_s=30.0)
    bg = st.build_background_streams(_pool(background_folder), 70 / 3600, cfg)
    assert [round(s.duration_s, 3) for s in bg] == [30.0, 30.0, 10.0]
    assert all(s.kind == "background" and not s.occurrences for s in bg)
    level = st.rms_dbfs(np.concatenate([s.samples for s in bg]))
    assert -46.0 < level < -30.0


def test_save_and_load_round_trip(tmp_path, sc_folder, background_folder):
    pool = _pool(background_folder)
    cfg = st.StreamConfig(seed=7, stream_s=30.0)
    streams = st.build_positive_streams(st.keyword_clips(sc_folder), pool, cfg) + \
        st.build_background_streams(pool, 20 / 3600, cfg)
    st.save_streams(streams, tmp_path, cfg)
    labels = (tmp_path / f"{streams[0].name}.labels.txt").read_text().splitlines()
    assert labels[0].split("\t")[2] in ("yes", "no")
    back = st.load_streams(tmp_path)
    assert [s.name for s in back] == [s.name for s in streams]
    for x, y in zip(streams, back):
        assert np.array_equal(x.samples, y.samples)
        assert x.kind == y.kind and x.snr_db == y.snr_db
        assert [(o.keyword, round(o.start_s, 4), round(o.end_s, 4)) for o in x.occurrences] == \
            [(o.keyword, o.start_s, o.end_s) for o in y.occurrences]


def test_bad_inputs_are_named(tmp_path, background_folder):
    with pytest.raises(ConfigError, match="does not exist"):
        st.keyword_clips(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no background WAV"):
        st.audio_files([tmp_path])
    with pytest.raises(ConfigError, match="gap range"):
        st.StreamConfig(min_gap_s=5, max_gap_s=2).validate()
    (tmp_path / "x.labels.txt").write_text("1.0 2.0 yes\n")
    write_wav(tmp_path / "x.wav", np.zeros(1600, np.int16), 16000)
    with pytest.raises(ConfigError, match="label line"):
        st.Stream.load(tmp_path / "x.wav")


def test_speaker_split_keeps_voices_apart(sc_folder):
    clips = st.keyword_clips(sc_folder)
    a, b = st.speaker_split(clips, 0.5)
    assert a and b and len(a) + len(b) == len(clips)
    assert not {c.speaker for c in a} & {c.speaker for c in b}


def test_changing_only_the_gaps_keeps_each_keyword_and_its_surroundings(sc_folder, background_folder):
    clips = st.keyword_clips(sc_folder)
    pool = _pool(background_folder)
    cfg = st.StreamConfig(seed=9, snr_db=5.0, stream_s=1000.0)
    [dense] = st.build_positive_streams(clips, pool, cfg.with_(min_gap_s=2.0, max_gap_s=3.0))
    [sparse] = st.build_positive_streams(clips, pool, cfg.with_(min_gap_s=8.0, max_gap_s=16.0))
    assert sparse.duration_s > dense.duration_s + 5 * len(clips)
    sr = cfg.sample_rate
    for a, b in zip(dense.occurrences, sparse.occurrences):
        assert (a.keyword, a.source) == (b.keyword, b.source)
        assert a.end_s - a.start_s == pytest.approx(b.end_s - b.start_s, abs=1e-6)
        wa = dense.samples[int(round((a.start_s - 0.5) * sr)):int(round((a.end_s + 0.5) * sr))]
        wb = sparse.samples[int(round((b.start_s - 0.5) * sr)):int(round((b.end_s + 0.5) * sr))]
        assert np.array_equal(wa, wb)  # same keyword, same gain, same background around it
    with pytest.raises(ConfigError, match="shortest gap"):
        cfg.with_(min_gap_s=1.0, max_gap_s=2.0)


def test_background_streams_record_their_segments(background_folder):
    cfg = st.StreamConfig(seed=5, stream_s=30.0)
    [s] = st.build_background_streams(_pool(background_folder), 30 / 3600, cfg)
    assert s.segments and s.segments[0][0] == 0.0
    assert all(a[1] > a[0] for a in s.segments) and s.segments[-1][1] == pytest.approx(30.0)
    assert {src.split("/")[0] for _, _, src in s.segments} == {"background"}
    assert any(src.endswith(".wav") for _, _, src in s.segments)
    again = st.build_background_streams(_pool(background_folder), 30 / 3600, cfg)[0]
    assert np.array_equal(again.samples, s.samples) and again.segments == s.segments
