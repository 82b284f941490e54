import shutil

from pricer.digests import directory_md5, file_md5


def test_file_md5_matches_dvc(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"pricer\n")
    assert file_md5(path) == "56d8a717a5f27e5e1f52b40fb9956086"  # `md5sum`, as in dvc.lock


def test_directory_md5_follows_contents_not_location_or_times(tmp_path):
    first = tmp_path / "a" / "model"
    (first / "sub").mkdir(parents=True)
    (first / "weights.pt").write_bytes(b"\x00\x01")
    (first / "sub" / "model.json").write_text("{}")
    second = tmp_path / "b" / "elsewhere"
    shutil.copytree(first, second)
    (second / "weights.pt").touch()
    assert directory_md5(first) == directory_md5(second)
    (second / "sub" / "model.json").write_text('{"x": 1}')
    assert directory_md5(first) != directory_md5(second)
    (second / "sub" / "model.json").write_text("{}")
    (second / "sub" / "model.json").rename(second / "model.json")
    assert directory_md5(first) != directory_md5(second)  # the same bytes under another name


def test_the_source_digest_follows_every_python_file_of_the_package(tmp_path, monkeypatch):
    from pricer import digests

    package = tmp_path / "pricer"
    (package / "training").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "training" / "loop.py").write_text("LOSS = 'l1'\n")
    (package / "vocabulary.yaml").write_text("a: 1\n")
    monkeypatch.setattr(digests, "PACKAGE_DIR", package)

    def digest() -> str:
        digests.package_source_md5.cache_clear()
        return digests.package_source_md5()

    try:
        first = digest()
        (package / "vocabulary.yaml").write_text("a: 2\n")  # not code
        assert digest() == first
        (package / "training" / "loop.py").write_text("LOSS = 'mse'\n")
        assert digest() != first
    finally:
        digests.package_source_md5.cache_clear()
