"""The loss terms as the authors train them: D_V's two full WGAN-GP terms, the relu2_2 content loss."""

import torch
import torch.nn.functional as F
import torchvision

from lmgan.nets.critics import ImageCritic, VideoCritic
from lmgan.training.losses import PerceptualLoss, critic_loss, gradient_penalty


def test_video_critic_loss_is_two_full_wgan_gp_terms():
    """[D(fake) − D(real) + λ·GP(real, fake)] + [D(shuffled) − D(real) + λ·GP(real, shuffled)],
    not 0.5·(D(fake) + D(shuffled)) − D(real) with one penalty."""
    torch.manual_seed(0)
    d = VideoCritic(16, 4, channel_base=64, max_channels=16, norm="layer")
    real, fake = torch.rand(1, 4, 3, 16, 16) * 2 - 1, torch.rand(1, 4, 3, 16, 16) * 2 - 1
    shuffled = real[:, torch.tensor([2, 0, 3, 1])]
    torch.manual_seed(1)
    w, gp = critic_loss(d, real, [fake, shuffled])
    torch.manual_seed(1)
    gp_f, gp_s = gradient_penalty(d, real, fake), gradient_penalty(d, real, shuffled)
    expected = (d(fake).mean() - d(real).mean() + 10 * gp_f) + (d(shuffled).mean() - d(real).mean() + 10 * gp_s)
    torch.testing.assert_close(w + 10 * gp, expected)
    assert gp_s > 0 and (gp - gp_f).abs() > 1e-6                 # the shuffled window has its own penalty
    halved = 0.5 * (d(fake).mean() + d(shuffled).mean()) - d(real).mean() + 10 * gp_f
    assert (expected - halved).abs() > 1e-3


def test_gradient_penalty_differentiates_the_sum_of_patch_scores():
    """Each sample's gradient is that of the sum of its 16 patch scores (the authors'
    grad_outputs=ones), so a critic whose patches all score x has gradient norm 16·|∇x|."""
    torch.manual_seed(0)
    d = ImageCritic(16, channel_base=64, max_channels=16, norm="layer")
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(d(x).sum(), x)
    (g_mean,) = torch.autograd.grad(d(x).mean(1).sum(), x)
    torch.testing.assert_close(g, 16 * g_mean)
    torch.manual_seed(3)
    gp = gradient_penalty(d, x.detach(), x.detach())               # x̂ = x whatever ε is
    torch.testing.assert_close(gp, (g.flatten(1).norm(dim=1) - 1).square().mean())


def test_perceptual_loss_is_the_relu2_2_content_loss(vgg_path):
    """MSE of VGG16 relu2_2 features (ImageNet-normalised [0, 1] input) and nothing deeper."""
    sd = torch.load(vgg_path)
    pl = PerceptualLoss(sd)
    assert len(pl.features) == 9 and isinstance(pl.features[-1], torch.nn.ReLU)
    vgg = torchvision.models.vgg16(weights=None)
    vgg.load_state_dict(sd)
    fake, real = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    relu2_2 = lambda x: vgg.features[:9](((x + 1) / 2 - mean) / std)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(pl(fake, real), F.mse_loss(relu2_2(fake), relu2_2(real)), rtol=1e-4, atol=1e-6)


class _Recording(torch.nn.Module):
    """A critic D(x) = ½‖x‖² per sample (gradient x̂ itself) that keeps what it was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return 0.5 * x.flatten(1).square().sum(1, keepdim=True)


def test_gradient_penalty_is_taken_on_random_points_of_the_real_fake_segments():
    """Gulrajani et al. (Algorithm 1): x̂ = ε·x + (1 − ε)·x̃ with one ε ~ U[0, 1] per sample (the
    same for all of a sample's pixels and frames), and the penalty (‖∇D(x̂)‖₂ − 1)² averaged over
    the samples. With D(x) = ½‖x‖², ∇D(x̂) = x̂, so the penalty follows from the points shown."""
    torch.manual_seed(0)
    d = _Recording()
    n = 400
    real, fake = torch.rand(n, 4, 3, 4, 4), -torch.rand(n, 4, 3, 4, 4)      # a window per sample
    gp = gradient_penalty(d, real, fake)
    (x,) = d.seen
    # ε per sample, recovered from each sample's points: one value, the same at every element
    eps = (x - fake) / (real - fake)
    per_sample = eps.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-4, rtol=0)
    e = per_sample[:, 0]
    assert float(e.min()) >= 0 and float(e.max()) <= 1
    assert abs(float(e.mean()) - 0.5) < 0.05 and abs(float(e.var()) - 1 / 12) < 0.02        # U[0, 1]
    want = (x.flatten(1).norm(dim=1) - 1).square().mean()
    torch.testing.assert_close(gp, want, rtol=1e-5, atol=0)
