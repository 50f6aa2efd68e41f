import torch.nn as nn

from dgmn import count_macs


def test_conv_and_linear_macs_are_exact():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, groups=2))
    assert count_macs(m, (2, 3, 10, 10)) == 2 * 100 * (8 * 3 * 9 + 4 * 4)
    assert count_macs(nn.Linear(5, 7), (3, 5)) == 3 * 5 * 7


def test_training_mode_is_restored():
    m = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train()
    count_macs(m, (1, 3, 4, 4))
    assert m.training
