"""Generic checks for a diffusers ``ModelMixin`` network, in the style of diffusers' ``ModelTesterMixin``.

A test class fills two factories and gets the tests::

    class TestMyNet(ModelTesterMixin):
        def make_model(self) -> MyNet:
            torch.manual_seed(0)
            return MyNet(width=32, layers=1)  # tiny sizes: every generated test must stay < 1 s

        def make_inputs(self) -> dict[str, Any]:
            g = torch.Generator().manual_seed(0)
            return {"sample": torch.randn(2, 4, 8, generator=g), "timestep": torch.tensor([1, 500])}

        def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
            return tuple(inputs["sample"].shape)

Generated tests: the output shape (finite values), determinism (two models from ``make_model`` and two calls
in eval mode give the same output), the ``save_pretrained`` / ``from_pretrained`` round trip (same config and
outputs; into ``tmp_path``), and gradient reach (a backward of the output sum gives every trainable parameter
a finite, non-zero gradient; :attr:`ModelTesterMixin.no_grad_parameters` lists those legitimately without).
The class name must not start with ``Test`` (pytest collects the test classes that fill it, not the mixin).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class ModelTesterMixin:
    """Shape, determinism, save/load round trip and gradient-reach tests for one network class."""

    no_grad_parameters: ClassVar[tuple[str, ...]] = ()
    """Regular expressions (``re.fullmatch`` on ``named_parameters`` names) of trainable parameters that
    legitimately get no gradient from the output (e.g. a branch the inputs do not reach)."""

    atol: ClassVar[float] = 0.0
    """Tolerance of the determinism and round-trip comparisons (0: bit-identical on CPU)."""

    def make_model(self) -> nn.Module:
        """A tiny, seeded instance of the network (a diffusers ``ModelMixin``): the same weights each call."""
        raise NotImplementedError

    def make_inputs(self) -> dict[str, Any]:
        """Keyword arguments of the network's forward, seeded (the same tensors every call)."""
        raise NotImplementedError

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        """The output shape for ``inputs``."""
        raise NotImplementedError

    def output(self, model: nn.Module, inputs: dict[str, Any]) -> Tensor:
        """The forward's output tensor (the ``sample`` of a diffusers output, the first of a tuple)."""
        out = model(**inputs)
        if hasattr(out, "sample"):
            return out.sample
        return out[0] if isinstance(out, tuple | list) else out

    def _eval_output(self, model: nn.Module) -> Tensor:
        with torch.no_grad():
            return self.output(model.eval(), self.make_inputs())

    def test_output_shape(self) -> None:
        inputs = self.make_inputs()
        with torch.no_grad():
            out = self.output(self.make_model().eval(), inputs)
        assert tuple(out.shape) == tuple(self.expected_shape(inputs))
        assert torch.isfinite(out).all()

    def test_deterministic(self) -> None:
        model = self.make_model()
        first = self._eval_output(model)
        torch.testing.assert_close(self._eval_output(model), first, rtol=0, atol=self.atol)
        torch.testing.assert_close(self._eval_output(self.make_model()), first, rtol=0, atol=self.atol)

    def test_save_pretrained_round_trip(self, tmp_path: Path) -> None:
        model = self.make_model().eval()
        expected = self._eval_output(model)
        model.save_pretrained(tmp_path / "model")
        loaded = type(model).from_pretrained(tmp_path / "model", low_cpu_mem_usage=False)
        assert type(loaded) is type(model) and not loaded.training

        def public(config: Any) -> dict[str, Any]:
            return {k: v for k, v in dict(config).items() if not k.startswith("_")}

        assert public(loaded.config) == public(model.config)
        torch.testing.assert_close(self._eval_output(loaded), expected, rtol=0, atol=self.atol)

    def test_gradient_reach(self) -> None:
        model = self.make_model().train()
        torch.manual_seed(0)  # dropout masks
        self.output(model, self.make_inputs()).sum().backward()
        exempt = [re.compile(p) for p in self.no_grad_parameters]
        bad = {}
        for name, param in model.named_parameters():
            if not param.requires_grad or any(p.fullmatch(name) for p in exempt):
                continue
            if param.grad is None:
                bad[name] = "no gradient"
            elif not torch.isfinite(param.grad).all():
                bad[name] = "non-finite gradient"
            elif not param.grad.abs().sum() > 0:
                bad[name] = "zero gradient"
        assert not bad, f"trainable parameters without a usable gradient: {bad}"
        unused = [
            p
            for p in self.no_grad_parameters
            if not any(re.fullmatch(p, n) for n, _ in model.named_parameters())
        ]
        assert not unused, f"no_grad_parameters that match no parameter: {unused}"


__all__ = ["ModelTesterMixin"]
