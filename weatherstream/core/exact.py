"""Exact sums of floats, so that aggregates do not depend on the order values arrive in.

Every finite double is an integer multiple of some power of two: ``x * 2**bits`` is an integer once ``bits``
is at least :func:`bits_needed` of ``x`` (0 for whole numbers, 49 for 12.34, at most 1074). A sum kept as such
an integer (a Python int, which never overflows) is exact: adding the same values in any order, or merging
partial sums made in any grouping, gives the same integer. Sums use :data:`SCALE_BITS` unless a value needs
more (only values below about 0.0005 in size do). Only the final value is rounded, once, to the nearest double:

- :func:`rounded` is the correctly rounded value of a scaled sum, the same double ``math.fsum`` returns for
  the values themselves, so ``rounded(sum) / n`` is ``statistics.fmean`` bit for bit;
- :func:`sample_std` is the correctly rounded sample standard deviation from the exact count, sum and sum
  of squares, which is what ``statistics.stdev`` returns (it also computes exactly).

Example:
    >>> values = [0.1, 0.2, 0.3, 1e16, -1e16]
    >>> bits = max(bits_needed(v) for v in values)
    >>> total = sum(scaled(v, bits) for v in values)
    >>> rounded(total, bits) == math.fsum(values) == 0.6
    True
    >>> sum(values)  # floats added in this order lose the small ones
    0.0
"""

from __future__ import annotations

import math

#: the scale of sums: values of 2**-11 or more in size are whole multiples of 2**-64
SCALE_BITS = 64
_KEEP_BITS = 55  # a double has 53; two more and a sticky bit make one rounding exact


def bits_needed(x: float) -> int:
    """The smallest ``bits`` for which ``x * 2**bits`` is an integer."""
    return x.as_integer_ratio()[1].bit_length() - 1


def scaled(x: float, bits: int = SCALE_BITS) -> int:
    """``x * 2**bits`` as an exact integer (``bits`` at least :func:`bits_needed` of ``x``)."""
    numerator, denominator = x.as_integer_ratio()
    return numerator << (bits + 1 - denominator.bit_length())


def scaled_square(x: float, bits: int = SCALE_BITS) -> int:
    """``x * x * 2**(2 * bits)`` as an exact integer."""
    numerator, denominator = x.as_integer_ratio()
    return (numerator * numerator) << (2 * (bits + 1 - denominator.bit_length()))


def rounded(total: int, scale_bits: int = SCALE_BITS) -> float:
    """``total * 2**-scale_bits`` rounded once to the nearest double (ties to even)."""
    return _ldexp_rounded(total, -scale_bits)


def _ldexp_rounded(m: int, e: int) -> float:
    """``m * 2**e`` correctly rounded (for results in the normal range of doubles)."""
    if m == 0:
        return 0.0
    a = -m if m < 0 else m
    extra = a.bit_length() - _KEEP_BITS
    if extra > 0:
        sticky = 1 if a & ((1 << extra) - 1) else 0
        a = (a >> extra) | sticky
        e += extra
    # ``float(a)`` of a <= 55-bit int rounds correctly; the sticky bit keeps a false tie from rounding down.
    value = math.ldexp(float(a), e)
    return -value if m < 0 else value


def sqrt_ratio(a: int, b: int) -> float:
    """The correctly rounded square root of ``a / b`` (``a >= 0``, ``b > 0``)."""
    if a == 0:
        return 0.0
    # q = floor(sqrt(a / b * 4**k)) with at least 55 bits; exact when q * q * b == a * 4**k.
    k = max(0, (2 * _KEEP_BITS + 2 - a.bit_length() + b.bit_length()) // 2 + 1)
    numerator = a << (2 * k)
    n, remainder = divmod(numerator, b)
    q = math.isqrt(n)
    if remainder or q * q != n:
        q |= 1  # inexact: a sticky bit below the rounding position
    return _ldexp_rounded(q, -k)


def sample_std(n: int, total: int, total_squares: int, scale_bits: int = SCALE_BITS) -> float | None:
    """The sample standard deviation of ``n`` values from their exact scaled sum and sum of squares.

    ``total`` is at scale ``2**scale_bits`` and ``total_squares`` at ``2**(2 * scale_bits)``. None below two values.
    """
    if n < 2:
        return None
    # variance = (n * sum(x^2) - sum(x)^2) / (n * (n - 1)), all exact at scale 2**(2 * scale_bits)
    spread = n * total_squares - total * total
    return sqrt_ratio(spread, (n * (n - 1)) << (2 * scale_bits))
