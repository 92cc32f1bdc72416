"""Label partitions: the disjoint equivalence classes an invariance induces on the labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

ClassKey = int | str


class LabelPartition:
    """Disjoint, covering, non-empty equivalence classes over the labels ``0..num_labels-1``.

    An invariance (a sign's shape, a speaker's gender, a cluster in a network's embeddings)
    splits the label set into classes; a router predicts the class, a leaf the label inside it.

    Parameters
    ----------
    classes : mapping of name -> label ids, or sequence of label-id sequences
        The equivalence classes. With a sequence, classes are named ``"class0"``, ``"class1"``...
        The order given is the order of the class ids a router outputs.
    num_labels : int, optional
        Size of the label set the classes must cover. Defaults to ``max(label) + 1``.

    Raises
    ------
    ValueError
        If a class is empty, a label appears twice (within or across classes), a label is
        outside ``0..num_labels-1``, or some label of ``0..num_labels-1`` is in no class.
    TypeError
        If a label is not an integer or the classes are not a mapping/sequence.

    Examples
    --------
    >>> p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "other": [1, 4, 7, 9]}, num_labels=10)
    >>> p.num_classes, p.class_of(7), p.labels_of("other")
    (2, 1, (1, 4, 7, 9))
    >>> p.to_local(7, "other"), p.to_global(2, 1)
    (2, 7)
    """

    def __init__(
        self,
        classes: Mapping[str, Sequence[int]] | Sequence[Sequence[int]],
        num_labels: int | None = None,
    ) -> None:
        names, groups = _normalise_classes(classes)
        all_labels = [label for group in groups for label in group]
        if num_labels is None:
            num_labels = max(all_labels) + 1 if all_labels else 0
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)):
            raise TypeError(f"num_labels must be an int, got {type(num_labels).__name__}")
        num_labels = int(num_labels)
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        _check_groups(names, groups, num_labels)

        self.names: tuple[str, ...] = tuple(names)
        self.classes: tuple[tuple[int, ...], ...] = tuple(tuple(sorted(g)) for g in groups)
        self.num_labels: int = num_labels
        label_to_class = torch.empty(num_labels, dtype=torch.long)
        label_to_local = torch.empty(num_labels, dtype=torch.long)
        for class_id, group in enumerate(self.classes):
            for local, label in enumerate(group):
                label_to_class[label] = class_id
                label_to_local[label] = local
        self.label_to_class: torch.Tensor = label_to_class
        self.label_to_local: torch.Tensor = label_to_local

    # ------------------------------------------------------------------ basic facts
    @property
    def num_classes(self) -> int:
        """Number of equivalence classes."""
        return len(self.classes)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of labels in each class."""
        return tuple(len(g) for g in self.classes)

    def class_index(self, key: ClassKey) -> int:
        """Class id of a class given by id or name."""
        if isinstance(key, str):
            try:
                return self.names.index(key)
            except ValueError:
                raise ValueError(
                    f"unknown class name {key!r}; expected one of {list(self.names)}"
                ) from None
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"a class is named by int id or str name, got {type(key).__name__}")
        if not 0 <= int(key) < self.num_classes:
            raise ValueError(f"class id {key} out of range 0..{self.num_classes - 1}")
        return int(key)

    def labels_of(self, key: ClassKey) -> tuple[int, ...]:
        """Global labels of a class (sorted)."""
        return self.classes[self.class_index(key)]

    # ------------------------------------------------------------------ label maps
    def class_of(self, labels: Any) -> Any:
        """Class id of each fine label; returns the same kind it was given (int/ndarray/tensor)."""
        return self._lookup(labels, self.label_to_class)

    def to_local(self, labels: Any, key: ClassKey) -> Any:
        """Index of global ``labels`` inside class ``key`` (all must belong to that class)."""
        class_id = self.class_index(key)
        cls = self._lookup(labels, self.label_to_class)
        wrong = np.atleast_1d(np.asarray(_to_numpy(cls)) != class_id)
        if wrong.any():
            bad = np.atleast_1d(_to_numpy(labels))[wrong]
            raise ValueError(
                f"labels {sorted(set(bad.tolist()))} are not in class "
                f"{self.names[class_id]!r} {list(self.classes[class_id])}"
            )
        return self._lookup(labels, self.label_to_local)

    def to_global(self, local: Any, key: ClassKey) -> Any:
        """Global label of each local index inside class ``key``."""
        group = self.classes[self.class_index(key)]
        table = torch.tensor(group, dtype=torch.long)
        return _lookup_table(local, table, what=f"local index of class {key!r}")

    def _lookup(self, labels: Any, table: torch.Tensor) -> Any:
        return _lookup_table(labels, table, what="label")

    # ------------------------------------------------------------------ nesting
    def restrict(
        self, key: ClassKey, classes: Mapping[str, Sequence[int]] | Sequence[Sequence[int]]
    ):
        """A partition of one class's labels, for an intermediate router below it.

        The returned partition is over *global* labels, covering exactly ``labels_of(key)``;
        it is a :class:`NestedPartition`.

        Examples
        --------
        >>> p = LabelPartition([[0, 1, 2, 3], [4, 5]])
        >>> q = p.restrict(0, {"low": [0, 1], "high": [2, 3]})
        >>> q.labels, q.class_of(3)
        ((0, 1, 2, 3), 1)
        """
        return NestedPartition(classes, labels=self.labels_of(key))

    @property
    def labels(self) -> tuple[int, ...]:
        """All labels the partition covers (sorted)."""
        return tuple(range(self.num_labels))

    # ------------------------------------------------------------------ dunder
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (round-trips through :meth:`from_dict`)."""
        return {
            "classes": {n: list(g) for n, g in zip(self.names, self.classes)},
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LabelPartition:
        """Rebuild a partition from :meth:`to_dict`'s output (validated like the constructor).

        Examples
        --------
        >>> LabelPartition.from_dict({"classes": {"a": [0], "b": [1, 2]}, "labels": [0, 1, 2]})
        LabelPartition({'a': [0], 'b': [1, 2]}, num_labels=3)
        >>> LabelPartition.from_dict({"classes": [[0]]})
        Traceback (most recent call last):
        ...
        ValueError: a partition dict needs the keys ['classes', 'labels'], got ['classes']
        """
        if not isinstance(spec, Mapping):
            raise TypeError(f"a partition dict must be a mapping, got {type(spec).__name__}")
        if not {"classes", "labels"} <= set(spec):
            raise ValueError(
                f"a partition dict needs the keys ['classes', 'labels'], got {sorted(spec)}"
            )
        labels = tuple(_int_labels(spec["labels"], "labels"))
        if labels == tuple(range(len(labels))):
            return LabelPartition(spec["classes"], num_labels=len(labels))
        return NestedPartition(spec["classes"], labels=labels)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LabelPartition)
            and self.names == other.names
            and self.classes == other.classes
            and self.labels == other.labels
        )

    def __hash__(self) -> int:
        return hash((self.names, self.classes, self.labels))

    def __len__(self) -> int:
        return self.num_classes

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {list(g)}" for n, g in zip(self.names, self.classes))
        return f"{type(self).__name__}({{{inner}}}, num_labels={self.num_labels})"


class NestedPartition(LabelPartition):
    """A partition of a *subset* of the global labels (the classes below an intermediate router).

    Labels stay global ids; ``class_of`` accepts only labels in the subset.

    Examples
    --------
    >>> q = NestedPartition({"a": [4, 9], "b": [6]}, labels=[4, 6, 9])
    >>> q.class_of(9), q.labels_of("b")
    (0, (6,))
    """

    def __init__(
        self,
        classes: Mapping[str, Sequence[int]] | Sequence[Sequence[int]],
        labels: Sequence[int],
    ) -> None:
        names, groups = _normalise_classes(classes)
        label_set = _int_labels(labels, "labels")
        if len(set(label_set)) != len(label_set):
            raise ValueError(f"labels contain duplicates: {sorted(_duplicates(label_set))}")
        if not label_set:
            raise ValueError("a nested partition needs at least one label, got none")
        universe = sorted(label_set)
        # Validate against the subset by mapping it to 0..m-1 first.
        index = {label: i for i, label in enumerate(universe)}
        outside = sorted({lab for g in groups for lab in g if lab not in index})
        if outside:
            raise ValueError(f"labels {outside} are not among this node's labels {universe}")
        local_groups = [[index[lab] for lab in g] for g in groups]
        _check_groups(names, local_groups, len(universe), render=lambda i: universe[i])
        self.names = tuple(names)
        self.classes = tuple(tuple(sorted(g)) for g in groups)
        self.num_labels = max(universe) + 1
        self._labels = tuple(universe)
        label_to_class = torch.full((self.num_labels,), -1, dtype=torch.long)
        label_to_local = torch.full((self.num_labels,), -1, dtype=torch.long)
        for class_id, group in enumerate(self.classes):
            for local, label in enumerate(group):
                label_to_class[label] = class_id
                label_to_local[label] = local
        self.label_to_class = label_to_class
        self.label_to_local = label_to_local

    @property
    def labels(self) -> tuple[int, ...]:
        return self._labels

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {list(g)}" for n, g in zip(self.names, self.classes))
        return f"{type(self).__name__}({{{inner}}}, labels={list(self._labels)})"

    def _lookup(self, labels: Any, table: torch.Tensor) -> Any:
        out = _lookup_table(labels, table, what="label")
        if (np.atleast_1d(_to_numpy(out)) < 0).any():
            bad = np.atleast_1d(_to_numpy(labels))[np.atleast_1d(_to_numpy(out)) < 0]
            raise ValueError(
                f"labels {sorted(set(bad.tolist()))} are outside this partition's labels "
                f"{list(self._labels)}"
            )
        return out


# ---------------------------------------------------------------------- helpers
def _normalise_classes(classes: Any) -> tuple[list[str], list[list[int]]]:
    if isinstance(classes, LabelPartition):
        return list(classes.names), [list(g) for g in classes.classes]
    if isinstance(classes, Mapping):
        names = []
        for name in classes:
            if not isinstance(name, str):
                raise TypeError(f"class names must be str, got {name!r}")
            names.append(name)
        groups = [_int_labels(classes[n], f"class {n!r}") for n in names]
    elif isinstance(classes, Sequence) and not isinstance(classes, (str, bytes)):
        groups = [_int_labels(g, f"class {i}") for i, g in enumerate(classes)]
        names = [f"class{i}" for i in range(len(groups))]
    else:
        raise TypeError(
            "classes must be a mapping name -> labels or a sequence of label sequences, "
            f"got {type(classes).__name__}"
        )
    if not groups:
        raise ValueError("a partition needs at least one class, got none")
    return names, groups


def _int_labels(group: Any, where: str) -> list[int]:
    if isinstance(group, torch.Tensor):
        group = group.tolist()
    elif isinstance(group, np.ndarray):
        group = group.tolist()
    if isinstance(group, (str, bytes)) or not isinstance(group, (Sequence, set, frozenset)):
        raise TypeError(f"{where} must be a sequence of int labels, got {type(group).__name__}")
    out = []
    for label in group:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"{where} has a non-integer label {label!r}")
        out.append(int(label))
    return out


def _duplicates(labels: Sequence[int]) -> set[int]:
    seen, dup = set(), set()
    for label in labels:
        (dup if label in seen else seen).add(label)
    return dup


def _check_groups(names, groups, num_labels, render=lambda i: i) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"class names are not unique: {sorted(_duplicates_str(names))}")
    empty = [n for n, g in zip(names, groups) if not g]
    if empty:
        raise ValueError(f"classes {empty} are empty; every class needs at least one label")
    out_of_range = sorted({lab for g in groups for lab in g if not 0 <= lab < num_labels})
    if out_of_range:
        raise ValueError(f"labels {out_of_range} are outside 0..{num_labels - 1}")
    flat = [lab for g in groups for lab in g]
    dup = _duplicates(flat)
    if dup:
        where = {render(lab): [n for n, g in zip(names, groups) if lab in g] for lab in sorted(dup)}
        raise ValueError(f"classes overlap or repeat labels: {where} (label: classes holding it)")
    covered = set(flat)
    if len(covered) != num_labels:
        # Name the first few uncovered labels without materialising range(num_labels): a
        # num_labels far beyond the labels given must not cost memory or time.
        missing = []
        for label in range(num_labels):
            if label not in covered:
                missing.append(render(label))
                if len(missing) == 10:
                    break
        total = num_labels - len(covered)  # every covered label is in range (checked above)
        shown = f"{missing}" if total <= len(missing) else f"{missing} ... ({total} in all)"
        raise ValueError(
            f"labels {shown} are in no class; classes must cover every label 0..{num_labels - 1}"
        )


def _duplicates_str(names: Sequence[str]) -> set[str]:
    seen, dup = set(), set()
    for n in names:
        (dup if n in seen else seen).add(n)
    return dup


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _lookup_table(values: Any, table: torch.Tensor, what: str) -> Any:
    """Index ``table`` by ``values`` keeping the container type (int, ndarray, list, tensor)."""
    n = table.numel()
    if isinstance(values, torch.Tensor):
        if values.dtype.is_floating_point or values.dtype == torch.bool:
            raise TypeError(f"{what}s must be an integer tensor, got dtype {values.dtype}")
        bad = (values < 0) | (values >= n)
        if bool(bad.any()):
            raise ValueError(f"{what}s {sorted(set(values[bad].tolist()))} outside 0..{n - 1}")
        return table.to(values.device)[values]
    if isinstance(values, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int, got bool")
    if isinstance(values, (int, np.integer)):
        if not 0 <= int(values) < n:
            raise ValueError(f"{what} {int(values)} outside 0..{n - 1}")
        return int(table[int(values)])
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what}s must be integers, got array of dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise ValueError(f"{what}s {sorted(set(arr[bad].tolist()))} outside 0..{n - 1}")
    out = table.numpy()[arr]
    return out.tolist() if isinstance(values, list) else out
