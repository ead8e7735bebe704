import { Router } from 'express';

export const phoneNumbersRouter = Router();
