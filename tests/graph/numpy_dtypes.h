/* Result dtypes of NumPy ufuncs on arrays, generated with NumPy 1.24.2 (python3-numpy from Debian):
 *   dtype index: 0=bool, 1=int8, 2=int16, 3=int32, 4=int64, 5=uint8, 6=uint16, 7=uint32, 8=uint64, 9=float16, a=float32, b=float64, x = TypeError.
 * Binary rows: 144 chars, entry [12*a + b] is op(a, b). NumPy 2 gives the same for arrays
 * (NEP 50 only changes Python scalars). */
static const char *const np_dtype_names[12] = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"};
static const struct { mt_sop op; const char *res; } np_binary_table[] = {
    {MT_SOP_ADD, "0123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_SUB, "x123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_MUL, "0123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_DIV, "bbbbbbbbb9abbbbbbbbbb9abbbbbbbbbbaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb9ab"
     "bbbbbbbbbaabbbbbbbbbbbbbbbbbbbbbbbbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_FLOORDIV, "1123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_MOD, "1123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_POW, "1123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_MAX, "0123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_MIN, "0123456789ab11234234b9ab22234234baab33334334bbbb44444444bbbb5223456789ab"
     "633346678aab744447778bbb8bbbb8888bbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_ATAN2, "99abb9abb9ab99abb9abb9abaaabbaabbaabbbbbbbbbbbbbbbbbbbbbbbbb99abb9abb9ab"
     "aaabbaabbaabbbbbbbbbbbbbbbbbbbbbbbbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_LOGADDEXP, "99abb9abb9ab99abb9abb9abaaabbaabbaabbbbbbbbbbbbbbbbbbbbbbbbb99abb9abb9ab"
     "aaabbaabbaabbbbbbbbbbbbbbbbbbbbbbbbb99abb9abb9abaaabbaabbaabbbbbbbbbbbbb"},
    {MT_SOP_LT, "000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000"},
    {MT_SOP_EQ, "000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000"},
    {MT_SOP_AND, "000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000"},
    {MT_SOP_BITAND, "012345678xxx11234234xxxx22234234xxxx33334334xxxx44444444xxxx522345678xxx"
     "633346678xxx744447778xxx8xxxx8888xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
    {MT_SOP_BITXOR, "012345678xxx11234234xxxx22234234xxxx33334334xxxx44444444xxxx522345678xxx"
     "633346678xxx744447778xxx8xxxx8888xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
};
static const struct { mt_sop op; const char *res; } np_unary_table[] = {
    {MT_SOP_NEG, "x123456789ab"},
    {MT_SOP_ABS, "0123456789ab"},
    {MT_SOP_SIGN, "x123456789ab"},
    {MT_SOP_SQUARE, "1123456789ab"},
    {MT_SOP_FLOOR, "99abb9abb9ab"},
    {MT_SOP_CEIL, "99abb9abb9ab"},
    {MT_SOP_TRUNC, "99abb9abb9ab"},
    {MT_SOP_ROUND, "9123456789ab"},
    {MT_SOP_EXP, "99abb9abb9ab"},
    {MT_SOP_LOG1P, "99abb9abb9ab"},
    {MT_SOP_SQRT, "99abb9abb9ab"},
    {MT_SOP_SIN, "99abb9abb9ab"},
    {MT_SOP_TANH, "99abb9abb9ab"},
    {MT_SOP_ATAN, "99abb9abb9ab"},
    {MT_SOP_ISNAN, "000000000000"},
    {MT_SOP_ISINF, "000000000000"},
    {MT_SOP_NOT, "000000000000"},
    {MT_SOP_BITNOT, "012345678xxx"},
};
