import numpy as np
import pytest
import torch

from pricer.batching import CSRTensors, epoch_order, iterate_batches


def test_batches_cover_rows_in_order_with_targets(random_csr):
    targets = np.arange(random_csr.shape[0], dtype=np.float32)
    data = CSRTensors.from_scipy(random_csr, targets)
    seen = []
    dense = torch.from_numpy(random_csr.toarray())
    for batch, batch_targets in iterate_batches(data, 64):
        rows = batch.rows
        rebuilt = torch.zeros(rows, random_csr.shape[1])
        row_ids = torch.repeat_interleave(torch.arange(rows), torch.diff(torch.cat([batch.offsets, torch.tensor([len(batch.indices)])])))
        rebuilt[row_ids, batch.indices] = batch.values
        start = len(seen)
        torch.testing.assert_close(rebuilt, dense[start : start + rows])
        seen.extend(batch_targets.tolist())
    assert seen == targets.tolist()


def test_take_rows_equals_scipy_row_selection(random_csr):
    order = np.random.default_rng(3).permutation(random_csr.shape[0])
    taken = CSRTensors.from_scipy(random_csr, np.arange(200, dtype=np.float32)).take_rows(order)
    expected = CSRTensors.from_scipy(random_csr[order])
    assert torch.equal(taken.indptr, expected.indptr)
    assert torch.equal(taken.indices, expected.indices)
    assert torch.equal(taken.values, expected.values)
    assert taken.targets.tolist() == order.astype(np.float32).tolist()


def test_epoch_order_is_deterministic_and_depends_on_the_epoch():
    assert np.array_equal(epoch_order(100, 42, 3), epoch_order(100, 42, 3))
    assert not np.array_equal(epoch_order(100, 42, 3), epoch_order(100, 42, 4))


@pytest.mark.parametrize(("rows", "world_size"), [(101, 2), (641, 2), (65, 2), (7, 3), (1, 4), (96, 3)])
def test_epoch_order_gives_every_rank_the_same_number_of_rows_and_keeps_every_row(rows, world_size):
    shards = [epoch_order(rows, 42, 1, rank=r, world_size=world_size) for r in range(world_size)]
    assert {len(shard) for shard in shards} == {-(-rows // world_size)}
    seen = np.concatenate(shards)
    assert set(seen.tolist()) == set(range(rows))
    assert len(seen) - rows == -rows % world_size  # the padding only: at most world_size - 1 repeats


def test_the_ranks_batches_of_one_step_are_the_single_process_batch():
    single = epoch_order(640, 7, 2)
    shards = [epoch_order(640, 7, 2, rank=r, world_size=2) for r in range(2)]
    global_batch, local_batch = 64, 32
    for step in range(640 // global_batch):
        together = np.concatenate([shard[step * local_batch:(step + 1) * local_batch] for shard in shards])
        assert sorted(together.tolist()) == sorted(single[step * global_batch:(step + 1) * global_batch].tolist())


def test_target_length_must_match(random_csr):
    with pytest.raises(ValueError, match="targets"):
        CSRTensors.from_scipy(random_csr, np.zeros(3))
