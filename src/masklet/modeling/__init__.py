"""Pure `nn.Module`s of SAM 2. No state is kept between calls."""
