"""``resize_opencv_linear`` equals OpenCV's ``cv2.resize(INTER_LINEAR)`` (DeepEthogram's resize), without OpenCV.

The expected bytes were written by ``cv2.resize`` (opencv-python 4.11, x86-64) in DeepEthogram's environment on the
same seeded frame; ``tests/deepethogram`` checks it on whole videos against DeepEthogram's own inference.
"""

from __future__ import annotations

import numpy as np
import pytest

from deg_train.inference.opencv_resize import resize_opencv_linear

CV2 = {
    (4, 5): (
        "d9629598718208cf73ac507e385365816a44757e74fc5e11c27985558375373a7fb5d686485274c8d374acc02c85557fa19f"
        "5f74add82493ba469b7a"
    ),
    (11, 17): (
        "8b4ae5cd877b90a564178a99642dada49cafcf9bd2b16ed50a945f4493ae4b5a956d4e58d2a42eaf4d417438256a625599b2"
        "d75d3a5bc15491a17cba339cc46a89a7bc635bb1398b6348cb07d876635566963f47ad4c5ab344c0b620ac662b7c34697840"
        "c1a7915839ca359dae51c75a94aa5d967a925a66a734749e3f7e8590539e313692324691528ab45bf98b50e46239cc4a5399"
        "469d54875b5dab417ea75a7c818f5d73885b5e6a857f4b8abe3b67f54b22c95a299a706c8f79acbb6cb98271a9695cb86657"
        "926e6a331039716e77549899328f9426a67b5d4a7673405ca27c45a6d0581ec7a74ac5ca95c0a1acb12d5ea6433e7b714d61"
        "7d6365606f037e2ca5c3a1bababd5f677b76233c3b7d4e77c37da6b99903296d9c6cc18172d55a4fd3981bd7681d9d9c3141"
        "8568540bb4db5db24f505f7d3c3b6e48584cd39dac91d86774f1466ace503b5075805ad4a592bdb8c28cbec38882b2baa5c6"
        "5cb0a53b864b85cb8ca366748e43585e665e3182d7575fbc2f798f349160544c37665664b869b5ca96c396dd5d35a39ebc71"
        "9c785c6f4b643278ce45e177518a69615694844b7ee3368793238673467f6f807f4d9f6d698a488a9f4b8ba3945972667c8f"
        "337c571c6a562454a4a932f3863d8b885b59a58d639ecc63bd7f507f9e6541d79a87a0de8c6d864c607b1a77a32ea9d6257a"
        "6830894c36997c3096d7e58be7bec9cf9c9a7e7d3d30479f824f77834da37435ee7803f7b25881d646a5c523caaa3488a472"
        "838b8e8cc49eaae9aad6de"
    ),
}


@pytest.mark.parametrize("size", sorted(CV2))
def test_equals_opencv_down_and_up(size):
    frame = np.random.default_rng(7).integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    assert frame.tobytes().hex().startswith("8b4ae5f1a94106a0956a")  # the frame OpenCV resized
    out = resize_opencv_linear(frame, size)
    assert out.shape == (*size, 3)
    assert out.tobytes().hex() == CV2[size]


def test_same_size_is_the_frame_and_bad_input_is_refused():
    frame = np.random.default_rng(0).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    assert resize_opencv_linear(frame, (6, 8)) is frame
    with pytest.raises(TypeError, match="uint8"):
        resize_opencv_linear(frame.astype(np.float32), (3, 4))
