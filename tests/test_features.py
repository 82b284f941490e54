import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from pricer.features import (ArtifactError, VectorizerSettings, load_feature_rows, load_features, save_features,
                             vectorize_column, vectorize_texts)


def test_default_settings_are_the_seed_recipe():
    vectorizer = VectorizerSettings().build()
    assert (vectorizer.n_features, vectorizer.stop_words, vectorizer.binary) == (5000, "english", True)


@pytest.mark.parametrize(("chunk_rows", "n_jobs"), [(7, 1), (50, 2), (1000, 1)])
def test_chunked_and_parallel_hashing_equals_single_transform(tiny_texts, chunk_rows, n_jobs):
    settings = VectorizerSettings(n_features=64)
    expected = HashingVectorizer(n_features=64, stop_words="english", binary=True, dtype=np.float32).transform(tiny_texts)
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
    save_features(tmp_path, "train", random_csr, labels)
    matrix, loaded = load_features(tmp_path, "train")
    assert (matrix != random_csr).nnz == 0 and loaded.equals(labels)

    with pytest.raises(ArtifactError, match=r"validation.npz: missing; run `dvc repro vectorize`"):
        load_features(tmp_path, "validation")
    npz = tmp_path / "train.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="train.npz: not a readable sparse matrix"):
        load_features(tmp_path, "train")
    save_features(tmp_path, "train", random_csr, labels.iloc[:10])
    with pytest.raises(ArtifactError, match="200 rows but .* has 10"):
        load_features(tmp_path, "train")


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


def test_feature_rows_read_only_their_share_and_fail_clearly(tmp_path, random_csr):
    labels = pd.DataFrame({"id": np.arange(200), "price": np.linspace(1, 100, 200)})
    save_features(tmp_path, "train", random_csr, labels)
    matrix, _ = load_feature_rows(tmp_path, "train", 10, 20)
    save_features(tmp_path, "train", random_csr * 2, labels)  # the rows were copied out, not left mapped
    assert (matrix != random_csr[10:20]).nnz == 0
    assert not any(isinstance(array, np.memmap) for array in (matrix.indptr, matrix.indices, matrix.data))
    save_features(tmp_path, "train", random_csr, labels)
    with pytest.raises(IndexError, match=r"rows \[150, 201\) are outside its 200 rows"):
        load_feature_rows(tmp_path, "train", 150, 201)
    with pytest.raises(ArtifactError, match=r"validation.npz: missing; run `dvc repro vectorize`"):
        load_feature_rows(tmp_path, "validation", 0, 1)
    sp.save_npz(tmp_path / "train.npz", random_csr, compressed=True)
    with pytest.raises(ArtifactError, match=r"train.npz: not a readable sparse matrix \(indptr.npy is compressed"):
        load_feature_rows(tmp_path, "train", 0, 1)
    npz = tmp_path / "train.npz"
    sp.save_npz(npz, random_csr, compressed=False)
    npz.write_bytes(npz.read_bytes()[:-200])
    with pytest.raises(ArtifactError, match="train.npz: not a readable sparse matrix"):
        load_feature_rows(tmp_path, "train", 0, 1)
    sp.save_npz(npz, random_csr, compressed=False)
    save_features(tmp_path, "train", random_csr, labels.iloc[:10])
    with pytest.raises(ArtifactError, match="200 rows but .* has 10"):
        load_feature_rows(tmp_path, "train", 0, 5)


@pytest.mark.parametrize("stop_words", ["english", None])
def test_wordless_texts_are_exactly_those_that_hash_to_no_feature(stop_words):
    texts = ["Title: Desk lamp", "the and of it", "!!! -- ?", "a b c", "", "The lamp", "日本語", "🎸 🎸", "x 1 y",
             "Café au lait", "THE", "it's", "10 20"]
    from pricer.text import wordless

    hashed = vectorize_texts(texts, VectorizerSettings(n_features=64, stop_words=stop_words))
    assert wordless(texts, stop_words).tolist() == (np.diff(hashed.indptr) == 0).tolist()
    assert wordless(["the and of it"], stop_words).tolist() == [stop_words == "english"]
