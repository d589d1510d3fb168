"""Image-to-image: a super-resolution network swept by pinsweep. Batches are `(low-res, high-res)`
images, the loss is MSE, the test figure PSNR. See README.md, "Your own dataset and model".

    pinsweep --config-dir examples/super_resolution/conf -m experiment=super_resolution
"""
