import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hierclass.data._tensors import as_tensors


class _Dicts(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return {"image": torch.full((1, 2, 2), float(i)), "meta": torch.tensor([i])}, i


def test_dataset_loader_and_pair_give_the_same_tensors():
    x = torch.rand(7, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    ds = TensorDataset(x, y)
    for data in (ds, DataLoader(ds, batch_size=3), (x, y), torch.utils.data.Subset(ds, range(7))):
        gx, gy = as_tensors(data)
        assert torch.equal(gx, x) and torch.equal(gy, y) and gy.dtype == torch.long


def test_dict_inputs_stack_per_modality():
    x, y = as_tensors(_Dicts())
    assert x["image"].shape == (3, 1, 2, 2) and x["meta"].tolist() == [[0], [1], [2]]
    assert y.tolist() == [0, 1, 2]
    x2, y2 = as_tensors(DataLoader(_Dicts(), batch_size=2))
    assert torch.equal(x2["image"], x["image"]) and torch.equal(y2, y)


def test_refusals():
    ds = TensorDataset(torch.rand(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="shuffle"):
        as_tensors(DataLoader(ds, shuffle=True))
    assert as_tensors(DataLoader(ds, shuffle=True), allow_shuffle=True)[0].shape == (4, 3)
    with pytest.raises(TypeError, match="ToTensor"):
        as_tensors(torch.utils.data.Subset([(object(), 1)], [0]))
    with pytest.raises(TypeError, match="labels must be integers"):
        as_tensors(TensorDataset(torch.rand(2, 3), torch.rand(2)))
    with pytest.raises(ValueError, match="same shape"):
        as_tensors(torch.utils.data.Subset([(torch.zeros(2), 0), (torch.zeros(3), 1)], [0, 1]))
    with pytest.raises(ValueError, match=r"\(input, label\) pair"):
        as_tensors(torch.utils.data.Subset([torch.zeros(2)], [0]))
    with pytest.raises(TypeError, match="Dataset, a DataLoader"):
        as_tensors("data")
