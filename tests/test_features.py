import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from pricer.features import (
    ArtifactError,
    VectorizerSettings,
    load_feature_rows,
    load_features,
    save_features,
    vectorize_column,
    vectorize_split,
    vectorize_texts,
)


def test_default_settings_are_the_seed_recipe():
    vectorizer = VectorizerSettings().build()
    assert (vectorizer.n_features, vectorizer.stop_words, vectorizer.binary) == (5000, "english", True)


@pytest.mark.parametrize(("chunk_rows", "n_jobs"), [(7, 1), (50, 2), (1000, 1)])
def test_chunked_and_parallel_hashing_equals_single_transform(tiny_texts, chunk_rows, n_jobs):
    settings = VectorizerSettings(n_features=64)
    expected = HashingVectorizer(n_features=64, stop_words="english", binary=True,
                                 dtype=np.float32).transform(tiny_texts)
    matrix = vectorize_texts(tiny_texts, settings, chunk_rows=chunk_rows, n_jobs=n_jobs)
    assert matrix.format == "csr" and matrix.dtype == np.float32
    assert matrix.shape == (len(tiny_texts), 64)
    assert (matrix != expected).nnz == 0


def test_stop_words_and_binary(tiny_texts):
    matrix = vectorize_texts(["the the the guitar"], VectorizerSettings(n_features=32, norm=None))
    assert matrix.nnz == 1 and matrix.data[0] == 1.0  # "the" dropped, "guitar" counted once


def test_empty_input_has_the_right_width():
    assert vectorize_texts([], VectorizerSettings(n_features=10)).shape == (0, 10)


def test_invalid_chunk_rows():
    with pytest.raises(ValueError, match="chunk_rows"):
        vectorize_texts(["a"], VectorizerSettings(), chunk_rows=0)


def test_chunks_are_equal_and_a_multiple_of_the_workers():
    from pricer.features import _chunks

    chunks = _chunks([str(i) for i in range(100_000)], 20_000, n_jobs=2)
    assert len(chunks) == 6 and max(map(len, chunks)) - min(map(len, chunks)) < len(chunks)
    assert [t for chunk in chunks for t in chunk] == [str(i) for i in range(100_000)]


def test_features_round_trip_and_clear_errors(tmp_path, random_csr):
    labels = pd.DataFrame({"id": np.arange(200), "price": np.linspace(1, 100, 200)})
    manifest = save_features(tmp_path, "train", random_csr, labels, part_rows=64)
    assert [part["rows"] for part in manifest["parts"]] == [64, 64, 64, 8] and manifest["nnz"] == random_csr.nnz
    matrix, loaded = load_features(tmp_path, "train")
    assert (matrix != random_csr).nnz == 0 and loaded.equals(labels)

    with pytest.raises(ArtifactError, match=r"validation: missing \(no manifest.json\); run `dvc repro vectorize`"):
        load_features(tmp_path, "validation")
    part = tmp_path / "train" / "part-00001.npz"
    part.write_bytes(part.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="part-00001.npz: not a readable sparse matrix"):
        load_features(tmp_path, "train")
    load_feature_rows(tmp_path, "train", 0, 64)  # the parts a range does not touch are not read
    save_features(tmp_path, "train", random_csr, labels, part_rows=64)
    (tmp_path / "train" / "part-00002.npz").unlink()
    with pytest.raises(ArtifactError, match=r"part-00002.npz: missing; rerun `dvc repro -f vectorize`"):
        load_features(tmp_path, "train")
    save_features(tmp_path, "train", random_csr, labels)
    pd.DataFrame({"id": [1], "price": [2.0]}).to_parquet(tmp_path / "train.parquet")
    with pytest.raises(ArtifactError, match="200 rows but .* has 1"):
        load_features(tmp_path, "train")


@pytest.mark.parametrize(("start", "stop"), [(0, 200), (0, 0), (63, 64), (60, 130), (128, 200), (199, 200)])
def test_load_feature_rows_reads_a_row_range(tmp_path, random_csr, start, stop):
    labels = pd.DataFrame({"id": np.arange(200), "price": np.linspace(1, 100, 200)})
    save_features(tmp_path, "train", random_csr, labels, part_rows=64)
    matrix, loaded = load_feature_rows(tmp_path, "train", start, stop)
    assert matrix.shape == (stop - start, 50) and (matrix != random_csr[start:stop]).nnz == 0
    assert loaded.reset_index(drop=True).equals(labels.iloc[start:stop].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"rows \[190, 201\) outside its 200 rows"):
        load_feature_rows(tmp_path, "train", 190, 201)


def test_indices_become_int64_past_2_to_the_31_non_zeros(monkeypatch, random_csr):
    from pricer import features

    pieces = [random_csr[:100], random_csr[100:]]
    stack = {"rows": 200, "nnz_bound": random_csr.nnz}
    assert features._stack_rows(pieces, 50, **stack).indptr.dtype == np.int32
    monkeypatch.setattr(features, "INT32_NNZ_LIMIT", 100)  # stands in for 2^31, which would take 16 GB to build
    stacked = features._stack_rows(pieces, 50, **stack)
    assert stacked.indptr.dtype == np.int64 and stacked.indices.dtype == np.int64
    assert (stacked != random_csr).nnz == 0


def test_stacking_lets_each_piece_go_before_taking_the_next(random_csr):
    import gc
    import weakref

    from pricer import features

    taken = []

    def pieces():
        for start in range(0, 200, 40):
            # the third piece is taken only once the first is copied and dropped (the first two are
            # taken together, to tell one piece from several)
            if len(taken) >= 2:
                gc.collect()
                assert taken[-2]() is None, f"piece {len(taken) - 2} still held when piece {len(taken)} is read"
            piece = random_csr[start : start + 40]
            taken.append(weakref.ref(piece))
            yield piece

    stacked = features._stack_rows(pieces(), 50, rows=200, nnz_bound=random_csr.nnz)
    assert len(taken) == 5 and (stacked != random_csr).nnz == 0
    assert stacked.data.dtype == np.float32 and stacked.indices.dtype == np.int32


def test_stacking_a_share_overshooting_the_bound_keeps_exactly_its_rows(random_csr):
    from pricer import features

    pieces = [random_csr[10:64], random_csr[64:128], random_csr[128:150]]
    stacked = features._stack_rows(pieces, 50, rows=140, nnz_bound=random_csr.nnz)  # the three whole parts' nnz
    assert stacked.shape == (140, 50) and stacked.nnz == random_csr[10:150].nnz
    assert (stacked != random_csr[10:150]).nnz == 0
    with pytest.raises(ValueError, match="not 141"):
        features._stack_rows(pieces, 50, rows=141, nnz_bound=random_csr.nnz)


def test_vectorize_split_streams_in_parts_identical_for_any_worker_count(tmp_path, tiny_texts):
    raw = tmp_path / "raw.parquet"
    frame = pd.DataFrame({"id": np.arange(len(tiny_texts)), "price": np.arange(len(tiny_texts)) + 1.0,
                          "summary": tiny_texts})
    frame.to_parquet(raw, row_group_size=17)  # row groups that do not line up with the chunks
    settings = VectorizerSettings(n_features=64)
    one = vectorize_split(raw, tmp_path / "one", "train", settings, chunk_rows=25, n_jobs=1)
    two = vectorize_split(raw, tmp_path / "two", "train", settings, chunk_rows=25, n_jobs=2)
    assert [part["rows"] for part in one["parts"]] == [25, 25, 25, 25, 20] and one == two
    for name in [*(part["file"] for part in one["parts"]), "manifest.json"]:
        assert (tmp_path / "one" / "train" / name).read_bytes() == (tmp_path / "two" / "train" / name).read_bytes()
    assert (tmp_path / "one" / "train.parquet").read_bytes() == (tmp_path / "two" / "train.parquet").read_bytes()
    matrix, labels = load_features(tmp_path / "one", "train")
    assert (matrix != vectorize_texts(tiny_texts, settings)).nnz == 0 and labels.equals(frame[["id", "price"]])


def test_vectorize_column_in_rounds_equals_one_call(tiny_texts):
    settings = VectorizerSettings(n_features=256)
    whole = vectorize_texts(tiny_texts, settings)
    in_rounds = vectorize_column(tiny_texts, settings, chunk_rows=7, n_jobs=2, progress_label="test")
    assert (in_rounds != whole).nnz == 0 and in_rounds.shape == whole.shape


@pytest.mark.parametrize(("start", "stop"), [(0, 200), (0, 0), (37, 121), (199, 200), (200, 200)])
def test_feature_rows_are_the_slice_of_the_saved_split(tmp_path, random_csr, start, stop):
    labels = pd.DataFrame({"id": np.arange(200), "price": np.linspace(1, 100, 200)})
    save_features(tmp_path, "train", random_csr, labels)
    matrix, loaded = load_feature_rows(tmp_path, "train", start, stop)
    assert matrix.shape == (stop - start, random_csr.shape[1]) and (matrix != random_csr[start:stop]).nnz == 0
    assert matrix.indices.dtype == random_csr.indices.dtype and matrix.data.dtype == random_csr.data.dtype
    assert loaded.equals(labels.iloc[start:stop].reset_index(drop=True))


@pytest.mark.parametrize("stop_words", ["english", None])
def test_wordless_texts_are_exactly_those_that_hash_to_no_feature(stop_words):
    texts = ["Title: Desk lamp", "the and of it", "!!! -- ?", "a b c", "", "The lamp", "日本語", "🎸 🎸", "x 1 y",
             "Café au lait", "THE", "it's", "10 20"]
    from pricer.text import wordless

    hashed = vectorize_texts(texts, VectorizerSettings(n_features=64, stop_words=stop_words))
    assert wordless(texts, stop_words).tolist() == (np.diff(hashed.indptr) == 0).tolist()
    assert wordless(["the and of it"], stop_words).tolist() == [stop_words == "english"]
