"""One engine step against the same step written out by hand; the checkpoint state
round trip."""

import copy

import pytest
import torch
import torch.nn.functional as F

from depthlab.engine.errors import ResumeError
from depthlab.engine.precision import make_precision
from depthlab.engine.state import TrainState, continue_on, resume
from depthlab.engine.step import train_step
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe


def nets():
    torch.manual_seed(0)
    model = build_model("residual", 8, num_classes=10, layout="cifar")
    return model, copy.deepcopy(model)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def test_one_engine_step_equals_a_hand_written_step():
    model, by_hand = nets()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(10, (16,), generator=g)
    desc = describe(model)
    probe = GradFlowProbe(model, desc["layers"], desc["blocks"])
    opt, opt_by_hand = sgd(model), sgd(by_hand)
    for step in range(2):  # the second step also uses the momentum buffers
        loss, correct, record = train_step(model, opt, x, y, make_precision("fp32", torch.device("cpu")),
                                           probe, step)
        out = by_hand(x)
        loss_by_hand = F.cross_entropy(out, y)
        opt_by_hand.zero_grad()
        loss_by_hand.backward()
        grads = {n: p.grad.clone() for n, p in by_hand.named_parameters()}
        opt_by_hand.step()

        assert torch.equal(loss, loss_by_hand.detach())
        assert correct.item() == (out.argmax(1) == y).sum().item()
        for name, p in model.named_parameters():
            assert torch.equal(p.grad, grads[name]), name
            assert torch.equal(p, dict(by_hand.named_parameters())[name]), name
        expected = [grads[f"{layer.name}.weight"].norm().item() for layer in desc["layers"]]
        assert record.step == step
        assert torch.allclose(torch.tensor(record.grad_norm), torch.tensor(expected), rtol=1e-6)
    probe.close()


def test_a_step_that_is_not_recorded_returns_no_record():
    model, _ = nets()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(10, (4,))
    *_, record = train_step(model, sgd(model), x, y, make_precision("fp32", torch.device("cpu")),
                            None, 5)
    assert record is None


def test_the_train_state_survives_a_checkpoint_round_trip(tmp_path):
    model, _ = nets()
    opt = sgd(model)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()  # momentum buffers to carry
    state = TrainState(epoch=3, batch_in_epoch=5, step=29,
                       totals={"loss": 12.5, "correct": 40.0, "seen": 160, "seconds": 2.5},
                       best_test_error=0.42, ratio_init=3.0, ratio_end=0.25, wall_before=10.0,
                       last_epoch_metrics={"train_error": 0.5, "test_error": 0.42},
                       records_skipped=2, processes=[2, 1])
    state.save(tmp_path, model, opt, None, wall_seconds=17.5)

    torch.manual_seed(1)
    fresh = build_model("residual", 8, num_classes=10, layout="cifar")
    fresh_opt = sgd(fresh)
    restored = resume(tmp_path, fresh, fresh_opt, None)
    expected = copy.deepcopy(state)
    expected.wall_before = 17.5  # the seconds so far become the earlier sittings'
    assert restored == expected
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    momentum = [s["momentum_buffer"] for s in opt.state_dict()["state"].values()]
    restored_momentum = [s["momentum_buffer"] for s in fresh_opt.state_dict()["state"].values()]
    assert len(momentum) == len(list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(momentum, restored_momentum))


def test_nothing_to_resume_in_an_empty_run_directory(tmp_path):
    model, _ = nets()
    assert resume(tmp_path, model, sgd(model), None) is None


def test_a_resume_on_another_number_of_processes_goes_on_only_where_the_steps_are_the_same(tmp_path):
    """A step computes the same whatever the split of the global batch, except batch norm
    with statistics per process (16 images on 2 processes, 32 on 1); sync_bn's and one
    process's are the whole batch's. The sittings' numbers are kept where they change."""
    torch.manual_seed(0)
    plain_bn = build_model("residual", 8, num_classes=10, layout="cifar")
    no_bn = build_model("residual", 8, num_classes=10, layout="cifar", norm="none")

    state = TrainState(processes=[2])
    continue_on(state, 1, no_bn, False, 32, tmp_path)
    continue_on(state, 1, no_bn, False, 32, tmp_path)
    assert state.processes == [2, 1]
    state = TrainState(processes=[1])
    continue_on(state, 2, plain_bn, True, 32, tmp_path)  # sync_bn: the global batch on both
    assert state.processes == [1, 2]
    state = TrainState(processes=[2])
    continue_on(state, 2, plain_bn, False, 32, tmp_path)  # the same number: nothing changes
    assert state.processes == [2]
    with pytest.raises(ResumeError, match="trained on 2 processes with batch norm over 16 images"):
        continue_on(TrainState(processes=[2]), 1, plain_bn, False, 32, tmp_path)
    with pytest.raises(ResumeError, match="trained on 4 processes .* over 8 images .* 16 on 2"):
        continue_on(TrainState(processes=[4]), 2, plain_bn, False, 32, tmp_path)
    # a checkpoint from before the number was kept: the earlier summary.json's
    with pytest.raises(ResumeError, match="trainer.devices=2"):
        continue_on(TrainState(), 1, plain_bn, False, 32, tmp_path, earlier=2)
    fresh = TrainState()
    continue_on(fresh, 2, plain_bn, False, 32, tmp_path)
    assert fresh.processes == [2]
