"""What transforms a trained net into another: interpolation (Section 4.1, Appendix B) and lesions
(Section 3.3), from the block bookkeeping of ``nets`` alone."""
