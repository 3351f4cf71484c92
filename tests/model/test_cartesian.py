"""The compact row algebra of cartesian.py against plain 3x3 matrix algebra (float64)."""

import torch

from tnq_model.nn import cartesian

C, N = 4, 5


def random_rows(seed: int) -> torch.Tensor:
    """Rows (10, C, N) of random tensors, S traceless."""
    rows = torch.randn(10, C, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rows[4:7] -= rows[4:7].mean(0)
    return rows


def matrices(rows: torch.Tensor) -> torch.Tensor:
    """(C, N, 3, 3) matrices of rows, built by hand: t Id + [a]_x + S."""
    t, (ax, ay, az), (sxx, syy, szz, sxy, sxz, syz) = rows[0], rows[1:4], rows[4:]
    zero = torch.zeros_like(t)
    eye = t[..., None, None] * torch.eye(3, dtype=rows.dtype)
    skew = torch.stack([zero, -az, ay, az, zero, -ax, -ay, ax, zero], -1).view(C, N, 3, 3)
    sym = torch.stack([sxx, sxy, sxz, sxy, syy, syz, sxz, syz, szz], -1).view(C, N, 3, 3)
    return eye + skew + sym


def as_entries(m: torch.Tensor) -> torch.Tensor:
    """(C, N, 3, 3) -> (3, 3, C, N)."""
    return m.permute(2, 3, 0, 1)


def test_rows_and_matrices_round_trip() -> None:
    rows = random_rows(0)
    torch.testing.assert_close(as_entries(matrices(rows)), cartesian.to_matrix(rows))
    torch.testing.assert_close(cartesian.to_rows(cartesian.to_matrix(rows)), rows)


def test_to_rows_splits_any_matrix_into_its_parts() -> None:
    m = torch.randn(C, N, 3, 3, dtype=torch.float64)
    rows = cartesian.to_rows(as_entries(m))
    torch.testing.assert_close(matrices(rows), m)
    assert torch.allclose(rows[4:7].sum(0), torch.zeros(C, N, dtype=torch.float64))


def test_products_equal_matrix_products() -> None:
    m, y = random_rows(1), random_rows(2)
    mm, ym = matrices(m), matrices(y)
    torch.testing.assert_close(matrices(cartesian.anticommutator(m, y)), mm @ ym + ym @ mm)
    torch.testing.assert_close(matrices(cartesian.square(m)), mm @ mm)


def test_norms_of_the_parts() -> None:
    rows = random_rows(3)
    m = matrices(rows)
    eye = torch.eye(3, dtype=rows.dtype)
    iso = m.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None] * eye
    skew = 0.5 * (m - m.transpose(-1, -2))
    sym = 0.5 * (m + m.transpose(-1, -2)) - iso
    expected = torch.stack([(part * part).sum((-1, -2)) for part in (iso, skew, sym)])
    torch.testing.assert_close(cartesian.part_norms(rows), expected)
    torch.testing.assert_close(cartesian.squared_norm(rows), (m * m).sum((-1, -2)))


def test_mixing_is_equivariant() -> None:
    rows = random_rows(4)
    weight = torch.randn(3, C, C, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64)).Q
    rotate = lambda r: cartesian.to_rows(as_entries(rotation @ matrices(r) @ rotation.T))  # noqa: E731
    torch.testing.assert_close(cartesian.mix(weight, rotate(rows)), rotate(cartesian.mix(weight, rows)))
